"""API of the portfolio: institutions and their statuses, accounts ("ver cartera"), the
debtor's 360° view and notes, import layouts and import jobs.

Bodies and query strings are validated here with the portfolio service's own schemas
for a quick answer; the service validates again, enforces permissions and scope (an
object outside the caller's institutions answers 404, like a missing one) and dumps
its answers, which these views only document.
"""
from __future__ import annotations

from flask import Response, request
from flask_smorest.fields import Upload
from marshmallow import EXCLUDE, fields

from portfolio.contracts import (AccountOut, AccountPage, AccountQuery, AccountUpdate,
                                 DebtorView, DoNotContactChangeOut, DoNotContactWrite,
                                 ImportCreate, ImportCreated, ImportJobOut, ImportJobPage,
                                 ImportProblemPage, ImportQuery, InstitutionOut, LayoutOut,
                                 LayoutWrite, NotesUpdate, StatusOut, StatusWrite)
from recaudo_common.validation import PageQuery, Schema

from .. import auth, uploads
from ..errors import error_body
from ..rpc import rpc
from .openapi import file_response
from ._views import Blueprint, body, query_args

blp = Blueprint("portfolio", __name__, url_prefix="/api/v1",
                description="Cartera: instituciones, estatus, cuentas, vista 360° del deudor "
                            "e importación de archivos")
blp.before_request(auth.require_api_user)



@blp.errorhandler(uploads.UploadFailed)
def _upload_failed(exc):
    return error_body(502, "storage_failed", "No se pudo guardar el archivo; intente de nuevo")


# --- institutions and statuses ----------------------------------------------------------

@blp.route("/institutions", methods=["GET"])
@blp.alt_response(200, schema=InstitutionOut(many=True))
def list_institutions():
    """Instituciones a su alcance (un cliente acreedor ve sólo la suya)."""
    with rpc() as proxy:
        return proxy.portfolio.list_institutions()


@blp.route("/institutions/<int:institution_id>", methods=["GET"])
@blp.alt_response(200, schema=InstitutionOut)
def get_institution(institution_id):
    with rpc() as proxy:
        return proxy.portfolio.get_institution(institution_id)


class AgingSnapshotTaken(Schema):
    institution_id = fields.Integer()
    snapshot_date = fields.Date()
    accounts = fields.Integer(metadata={"description": "Cuentas en la fotografía"})


@blp.route("/institutions/<int:institution_id>/aging-snapshot", methods=["POST"])
@blp.alt_response(200, schema=AgingSnapshotTaken)
def snapshot_aging(institution_id):
    """Toma ahora la fotografía diaria de antigüedad de la institución (de su hoy, en su
    zona horaria), tras recalcular días de atraso y etapas; si ya existía, la reemplaza.
    El servicio la toma sólo al arrancar y cada día; esto es para no esperar."""
    with rpc() as proxy:
        return proxy.portfolio.snapshot_aging(institution_id)


@blp.route("/institutions/<int:institution_id>/statuses", methods=["GET"])
@blp.alt_response(200, schema=StatusOut(many=True))
def list_statuses(institution_id):
    """El catálogo de estatus de cuenta de una institución."""
    with rpc() as proxy:
        return proxy.portfolio.list_statuses(institution_id)


@blp.route("/statuses", methods=["POST"])
@blp.arguments(StatusWrite)
@blp.alt_response(201, schema=StatusOut)
def create_status(_):
    """Agrega un estatus al catálogo de una institución (permiso institutions.manage)."""
    with rpc() as proxy:
        return proxy.portfolio.save_status(body()), 201


@blp.route("/statuses/<int:status_id>", methods=["PUT"])
@blp.arguments(StatusWrite)
@blp.alt_response(200, schema=StatusOut)
def update_status(_, status_id):
    with rpc() as proxy:
        return proxy.portfolio.save_status(body(), status_id)


# --- accounts and debtors ------------------------------------------------------------------

@blp.route("/accounts", methods=["GET"])
@blp.arguments(AccountQuery, location="query")
@blp.alt_response(200, schema=AccountPage)
def list_accounts(_):
    """Ver cartera: búsqueda libre (nombre, número de cliente o de cuenta, teléfono, correo),
    filtros, orden y páginas. Un gestor ve sólo las cuentas asignadas a él; más de 10,000
    resultados se cuentan como «al menos» (``total_is_exact`` falso)."""
    with rpc() as proxy:
        return proxy.portfolio.list_accounts(query_args(AccountQuery))


@blp.route("/accounts/<int:account_id>", methods=["GET"])
@blp.alt_response(200, schema=AccountOut)
def get_account(account_id):
    with rpc() as proxy:
        return proxy.portfolio.get_account(account_id)


@blp.route("/accounts/<int:account_id>", methods=["PATCH"])
@blp.arguments(AccountUpdate)
@blp.alt_response(200, schema=AccountOut)
def update_account(_, account_id):
    """Etapa, estatus, gestor o abogado de la cuenta (permiso portfolio.write)."""
    with rpc() as proxy:
        return proxy.portfolio.update_account(account_id, body())


@blp.route("/debtors/<int:debtor_id>", methods=["GET"])
@blp.alt_response(200, schema=DebtorView)
def get_debtor(debtor_id):
    """Vista 360° del deudor: datos, teléfonos, correos, domicilios, avales y sus cuentas
    con amortizaciones y movimientos."""
    with rpc() as proxy:
        return proxy.portfolio.get_debtor(debtor_id)


@blp.route("/debtors/<int:debtor_id>/notes", methods=["PUT"])
@blp.arguments(NotesUpdate)
@blp.alt_response(204, description="Notas guardadas")
def update_notes(_, debtor_id):
    """Reemplaza las notas del deudor (permiso portfolio.write)."""
    with rpc() as proxy:
        proxy.portfolio.update_notes(debtor_id, body())
    return "", 204


@blp.route("/debtors/<int:debtor_id>/do-not-contact", methods=["POST"])
@blp.arguments(DoNotContactWrite)
@blp.alt_response(201, schema=DoNotContactChangeOut)
def set_do_not_contact(_, debtor_id):
    """Marca un teléfono, correo o domicilio del deudor como «no contactar» (o quita la
    marca) con el motivo; queda en su historial (``do_not_contact_history`` de la vista
    360°) con quién y cuándo. Marcar: permiso activities.log o portfolio.write; quitar la
    marca: portfolio.write. Ya marcado así: 409; un contacto de otro deudor: 404."""
    with rpc() as proxy:
        return proxy.portfolio.set_do_not_contact(debtor_id, body()), 201


# --- import layouts and jobs ---------------------------------------------------------------

class ImportUpload(Schema):
    """The multipart form (one schema: OpenAPI has one request body). ``file`` comes from
    ``request.files``; its absence answers 422 naming it."""

    class Meta:
        unknown = EXCLUDE   # a browser's csrf_token field

    layout_id = fields.Integer(required=True)
    file = Upload(metadata={"description": "El archivo CSV o XLSX (obligatorio)"})


@blp.route("/institutions/<int:institution_id>/import-layouts", methods=["GET"])
@blp.alt_response(200, schema=LayoutOut(many=True))
def list_layouts(institution_id):
    """Layouts de importación de una institución (cómo se leen las columnas de su archivo)."""
    with rpc() as proxy:
        return proxy.portfolio.list_layouts(institution_id)


@blp.route("/import-layouts", methods=["POST"])
@blp.arguments(LayoutWrite)
@blp.alt_response(201, schema=LayoutOut)
def create_layout(_):
    with rpc() as proxy:
        return proxy.portfolio.save_layout(body()), 201


@blp.route("/import-layouts/<int:layout_id>", methods=["PUT"])
@blp.arguments(LayoutWrite)
@blp.alt_response(200, schema=LayoutOut)
def update_layout(_, layout_id):
    with rpc() as proxy:
        return proxy.portfolio.save_layout(body(), layout_id)


@blp.route("/imports", methods=["GET"])
@blp.arguments(ImportQuery, location="query")
@blp.alt_response(200, schema=ImportJobPage)
def list_imports(_):
    """Importaciones recientes de las instituciones a su alcance."""
    with rpc() as proxy:
        return proxy.portfolio.list_imports(query_args(ImportQuery))


@blp.route("/imports", methods=["POST"])
@blp.arguments(ImportCreate)
@blp.alt_response(201, schema=ImportCreated)
def create_import(_):
    """Registra una importación y responde la URL prefirmada a la que el cliente sube el
    archivo con PUT; después llame a ``POST /imports/{id}/start``."""
    with rpc() as proxy:
        return proxy.portfolio.create_import(body()), 201


@blp.route("/imports/upload", methods=["POST"])
@blp.arguments(ImportUpload, location="form", content_type="multipart/form-data")
@blp.alt_response(202, schema=ImportJobOut)
@blp.alt_response(502, response="BAD_GATEWAY")
def upload_import(form):
    """Para clientes que no pueden subir a S3: el archivo va en un formulario multipart
    (``layout_id`` y ``file``, hasta 1 GiB); la pasarela lo transmite al almacén, inicia
    la importación y responde el trabajo."""
    with rpc() as proxy:
        return uploads.upload_import(proxy, form["layout_id"],
                                     request.files.get("file")), 202


@blp.route("/imports/<int:job_id>/start", methods=["POST"])
@blp.alt_response(202, schema=ImportJobOut)
def start_import(job_id):
    """Inicia una importación cuyo archivo ya se subió."""
    with rpc() as proxy:
        return proxy.portfolio.start_import(job_id), 202


@blp.route("/imports/<int:job_id>", methods=["GET"])
@blp.alt_response(200, schema=ImportJobOut)
def get_import(job_id):
    """Estado y avance: queued, running, done o failed, con renglones procesados,
    importados y rechazados."""
    with rpc() as proxy:
        return proxy.portfolio.get_import(job_id)


@blp.route("/imports/<int:job_id>/problems", methods=["GET"])
@blp.arguments(PageQuery, location="query")
@blp.alt_response(200, schema=ImportProblemPage)
def import_problems(query, job_id):
    """Renglones rechazados: renglón, columna y problema."""
    with rpc() as proxy:
        return proxy.portfolio.import_problems(job_id, query.get("page", 1),
                                               query.get("per_page", 50))


@blp.route("/imports/<int:job_id>/report.csv", methods=["GET"])
@blp.doc(responses={"200": file_response("Reporte CSV de los renglones rechazados", "text/csv")})
def import_report(job_id):
    """El reporte de validación en CSV (renglón, columna, problema)."""
    with rpc() as proxy:
        text = proxy.portfolio.import_report_csv(job_id)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=errores_importacion_{job_id}.csv"})
