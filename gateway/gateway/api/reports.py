"""API of the reports and dashboards: one route per report (JSON, CSV, XLSX or PDF by
``format``), the catalogue of reports and their filters, the supervisor's day and the
institution overview.

Filters are read and checked once (``gateway.reporting.parse``): an unknown filter,
one the report does not take, a range ending before it starts or over the maximum, an
unknown group or format answer 422 naming the field. The owning service checks
``reports.view`` and the caller's institutions (another institution answers 404,
exactly like a missing one); a partner's Integración key reaches exactly what its
institution's Cliente users see.
"""
from __future__ import annotations

from flask import Response, g, request
from marshmallow import fields
from recaudo_common.validation import Schema

from .. import auth, reporting
from ..errors import error_body
from ..rpc import rpc
from .openapi import file_response
from ._views import Blueprint

blp = Blueprint("reports", __name__, url_prefix="/api/v1",
                description="Reportes (JSON, CSV, XLSX, PDF) y tableros: productividad, "
                            "recuperación, antigüedad, rodamiento, promesas, aclaraciones y "
                            "campeona contra retadora")
blp.before_request(auth.require_api_user)

_COMMON_PARAMETERS = [
    {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(reporting.FORMATS)},
     "description": "json (por omisión), csv, xlsx o pdf"},
    {"name": "institution_id", "in": "query", "schema": {"type": "integer"}},
]


def _parameters(report: reporting.Report) -> list[dict]:
    params = list(_COMMON_PARAMETERS)
    if report.dated:
        params += [{"name": n, "in": "query", "schema": {"type": "string", "format": "date"},
                    "description": d} for n, d in (
            ("date_from", "AAAA-MM-DD; por omisión, el primero del mes"),
            ("date_to", f"AAAA-MM-DD; por omisión, hoy; a lo más "
                        f"{reporting.MAX_RANGE_DAYS} días después de date_from"))]
    else:
        params.append({"name": "as_of", "in": "query",
                       "schema": {"type": "string", "format": "date"},
                       "description": "la fotografía más reciente hasta esta fecha"})
    for name in report.filters:
        if name == "institution_id":
            continue
        kind = {"type": "string", "enum": list(reporting.STAGES)} if name == "stage" \
            else {"type": "integer"}
        params.append({"name": name, "in": "query", "schema": kind})
    if report.groups:
        params.append({"name": "group_by", "in": "query", "explode": True,
                       "schema": {"type": "array",
                                  "items": {"type": "string", "enum": list(report.groups)}},
                       "description": "repetible; por omisión: "
                                      + ", ".join(report.default_groups)})
    return params


_FIGURES = ("conteos como enteros; importes y tasas como texto decimal (\"1234.50\", "
            "\"0.4521\"), null si no hay base para calcularlas")


class ReportAnswer(Schema):
    """Every report's JSON: which keys a row and the totals have depends on the report and
    its ``group_by`` (the catalogue, ``GET /reports``, names them)."""
    rows = fields.List(fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True)),
                       metadata={"description": "una fila por grupo: sus claves de grupo y "
                                                "sus cifras (" + _FIGURES + ")"})
    totals = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                         metadata={"description": "las cifras de todas las filas"})
    group_by = fields.List(fields.String())
    date_from = fields.Date(metadata={"description": "reportes por periodo"})
    date_to = fields.Date(metadata={"description": "reportes por periodo"})
    as_of = fields.Date(metadata={"description": "reportes de fotografía (antigüedad)"})
    snapshot_date = fields.Date(allow_none=True, metadata={
        "description": "la fotografía usada: la más reciente hasta as_of (null si no hay)"})
    buckets = fields.List(fields.String(), metadata={
        "description": "las etapas de mora en orden (antigüedad, rodamiento)"})
    months = fields.List(fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True)),
                         metadata={"description": "rodamiento: una entrada por mes"})
    assigned_on = fields.Date(allow_none=True, metadata={
        "description": "campeona contra retadora: el día de la asignación comparada"})


class HourCount(Schema):
    hour = fields.Integer(required=True, metadata={"description": "0-23, hora local"})
    activities = fields.Integer(required=True)


class SupervisorDay(Schema):
    day = fields.Date(required=True)
    agents = fields.List(fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True)),
                         required=True, metadata={
        "description": "por gestor: su id y nombre y sus contadores del día (" + _FIGURES + ")"})
    totals = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True),
                         required=True, metadata={"description": "los contadores de todos"})
    hours = fields.List(fields.Nested(HourCount), required=True)


class InstitutionOverview(Schema):
    institution_id = fields.Integer(allow_none=True, metadata={
        "description": "null: todas las instituciones del usuario"})
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)
    aging = fields.Nested(ReportAnswer)
    recovery = fields.Nested(ReportAnswer)
    productivity = fields.Nested(ReportAnswer)
    promises = fields.Nested(ReportAnswer)
    disputes = fields.Nested(ReportAnswer)


def answer(report: reporting.Report):
    """The report as JSON, or exported to the format asked."""
    fmt = request.args.get("format", "json")
    query = reporting.parse(report, request.args, reporting.today())
    with rpc() as proxy:
        result = reporting.run(proxy, report, query)
        if fmt == "json":
            return result
        names = reporting.Names.load(proxy, report, query)
    table = reporting.tabulate(report, result, names, query)
    body = reporting.export(fmt, table)
    # content_type, not mimetype: MIME names the charset already, and Werkzeug would add
    # a second one to a text/* mimetype
    return Response(body, content_type=reporting.MIME[fmt], headers={
        "Content-Disposition": f'attachment; filename="{reporting.filename(report, query, fmt)}"'})


def _route(report: reporting.Report):
    def view():
        return answer(report)

    view.__name__ = "report_" + report.key.replace("-", "_")
    view.__doc__ = f"{report.title}. {report.description}"
    decorated = blp.doc(parameters=_parameters(report), responses={"200": file_response(
        "El reporte: JSON, o el archivo del formato pedido",
        *(reporting.MIME[fmt] for fmt in reporting.FORMATS if fmt != "json"),
        json_schema=ReportAnswer)})(view)
    blp.route(f"/reports/{report.key}", methods=["GET"])(decorated)


for _report in reporting.REPORTS.values():
    _route(_report)


class ReportInfo(Schema):
    key = fields.String()
    title = fields.String()
    description = fields.String()
    filters = fields.List(fields.String())
    groups = fields.List(fields.String())
    formats = fields.List(fields.String())


@blp.route("/reports", methods=["GET"])
@blp.alt_response(200, schema=ReportInfo(many=True))
def catalogue():
    """Los reportes, los filtros que acepta cada uno y sus formatos."""
    if "reports.view" not in g.user["permissions"]:   # no service is asked: say it here
        return error_body(403, "permission_denied", "Falta el permiso reports.view",
                          {"permission": ["reports.view"]})
    return [{"key": r.key, "title": r.title, "description": r.description,
             "filters": [*r.filters, *(("date_from", "date_to") if r.dated else ("as_of",))],
             "groups": list(r.groups), "formats": list(reporting.FORMATS)}
            for r in reporting.REPORTS.values()]


@blp.route("/dashboards/supervisor", methods=["GET"])
@blp.alt_response(200, schema=SupervisorDay)
@blp.doc(parameters=[{"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}},
                     {"name": "team_id", "in": "query", "schema": {"type": "integer"}},
                     {"name": "institution_id", "in": "query", "schema": {"type": "integer"}}])
def supervisor_day():
    """El día del supervisor: contadores por gestor y gestiones por hora (su equipo, o
    todos los de sus instituciones)."""
    query = reporting.day_query(request.args)
    with rpc() as proxy:
        return proxy.activities.supervisor_day(query)


@blp.route("/dashboards/institution", methods=["GET"])
@blp.alt_response(200, schema=InstitutionOverview)
@blp.doc(parameters=[{"name": "institution_id", "in": "query", "schema": {"type": "integer"}}])
def institution_overview():
    """Resumen de una institución (o de todas las del usuario): antigüedad, recuperación y
    productividad del mes, promesas y aclaraciones."""
    institution_id = reporting.institution_arg(request.args)
    with rpc() as proxy:
        return reporting.overview(proxy, institution_id, reporting.today())
