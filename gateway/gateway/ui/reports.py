"""The "Reportes" area: the list of reports and dashboards, and each report's page with
its filters, its table a page at a time, and downloads (CSV, XLSX, PDF).

Filters are read by ``reporting.parse`` (the API's own checks), so a bad value is
told next to its field with 422 and nothing else runs. A report larger than
``RENDER_LIMIT`` rows is not drawn: the page offers the download instead. Downloads go
to the API route of the same report with the same filters (the session cookie
authenticates it), so the page and the API can never disagree.
"""
from __future__ import annotations

import base64
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _

from werkzeug.datastructures import MultiDict

from recaudo_common.errors import InvalidInput

from .. import auth, reporting
from ._common import N_, debtor_screens, to_int, translated
from ..rpc import rpc

bp = debtor_screens(Blueprint("reports_ui", __name__))

STATUS_INSTITUTIONS = 20


@bp.get("/reportes")
@auth.permission_required("reports.view")
def index():
    return render_template("reports/index.html", reports=reporting.REPORTS.values())


def _options(proxy, report: reporting.Report, query: dict) -> dict:
    """What the filter form offers: only the filters this report takes."""
    institutions = proxy.portfolio.list_institutions()
    out = {"institutions": institutions, "teams": [], "agents": {}, "queues": [],
           "statuses": []}
    if {"team_id", "agent_id"} & set(report.filters):
        out["teams"] = proxy.auth.list_teams()
        for team in out["teams"]:
            out["agents"].update({m["id"]: m["display_name"] for m in team["members"]})
    if "queue_id" in report.filters:
        out["queues"] = proxy.queues.report_queues(query.get("institution_id"))
    if "status_id" in report.filters:
        chosen = query.get("institution_id")
        for i in institutions if chosen is None else \
                [i for i in institutions if i["id"] == chosen]:
            out["statuses"] += [{**s, "institution": i["code"]}
                                for s in proxy.portfolio.list_statuses(i["id"])][:200]
            if len(out["statuses"]) > STATUS_INSTITUTIONS * 20:
                break
    return out


@bp.get("/reportes/<slug>")
@auth.permission_required("reports.view")
def report(slug: str):
    return _report_page(slug, request.args)


def _report_page(slug: str, args, schedule: dict | None = None):
    """The report's page for the filters in ``args``; ``schedule``: a refused scheduling
    form to show again (its values and problems)."""
    chosen = reporting.BY_SLUG.get(slug)
    if chosen is None:
        abort(404)
    errors, table, query, status = {}, None, {}, 200
    try:
        query = reporting.parse(chosen, args, reporting.today(),
                                ignore=("format", "page", "pagina"))
    except InvalidInput as exc:
        errors, status = exc.fields, 422
    with rpc() as proxy:
        if not errors:
            try:
                answer = reporting.run(proxy, chosen, query)
                names = reporting.Names.load(proxy, chosen, query)
                table = reporting.tabulate(chosen, answer, names, query)
            except InvalidInput as exc:   # what only the service could judge
                errors, status = exc.fields, 422
        options = _options(proxy, chosen, query)
    page_number = max(1, min(to_int(args.get("pagina"), 1), 100_000))
    too_large = table is not None and len(table.rows) > reporting.RENDER_LIMIT
    page = None
    if table is not None and not too_large:
        total = len(table.rows)
        pages = max(1, -(-total // reporting.PER_PAGE))
        page_number = min(page_number, pages)
        page = {"total": total, "page": page_number, "pages": pages,
                "rows": table.rows[(page_number - 1) * reporting.PER_PAGE:
                                   page_number * reporting.PER_PAGE]}
    downloads = {fmt: url_for(f"reports.report_{chosen.key.replace('-', '_')}",
                              **{k: args.getlist(k) for k in args
                                 if k not in ("format", "page", "pagina")}, format=fmt)
                 for fmt in ("csv", "xlsx", "pdf")} if not errors else {}
    if schedule is not None:
        status = 422
    return render_template("reports/report.html", report=chosen, table=table, page=page,
                           errors=errors, values=args, query=query,
                           schedule=schedule or {"values": {}, "errors": {}},
                           FREQUENCIES=translated(FREQUENCIES),
                           WEEKDAYS=[_(d) for d in WEEKDAYS],
                           too_large=too_large, downloads=downloads, options=options,
                           STAGE_LABELS=translated(reporting.STAGES),
                           GROUP_LABELS=translated(reporting.GROUP_LABELS),
                           FILTER_LABELS=translated(reporting.FILTER_LABELS),
                           user=g.user), status


# --- scheduled mailings of a report ------------------------------------------------------------

FREQUENCIES = {"daily": N_("Diario"), "weekly": N_("Semanal"), "monthly": N_("Mensual")}
WEEKDAYS = (N_("Lunes"), N_("Martes"), N_("Miércoles"), N_("Jueves"), N_("Viernes"),
            N_("Sábado"), N_("Domingo"))
RUN_STATES = {"sent": N_("Enviado"), "failed": N_("Falló")}
SCHEDULE_FIELDS = ("frequency", "weekday", "month_day", "hour", "format", "recipients",
                   "subject")


def _schedule_from_form(report: reporting.Report, filters, form) -> dict:
    """The schedule the form asks for: the report's current filters (not the dates) and the
    mailing fields."""
    query = reporting.parse(report, filters, reporting.today(), ignore=("page", "pagina"))
    filters = {k: v for k, v in query.items()
               if k not in ("date_from", "date_to", "as_of", "institution_id")}
    recipients = [r.strip() for r in form.get("recipients", "").replace(";", ",")
                  .replace("\n", ",").split(",") if r.strip()]
    data = {"report": report.key, "institution_id": query.get("institution_id"),
            "filters": filters, "format": form.get("format", "xlsx"),
            "frequency": form.get("frequency", ""), "recipients": recipients,
            "subject": form.get("subject", "").strip(),
            "hour": to_int(form.get("hour"), form.get("hour"))}
    for name in ("weekday", "month_day"):
        if form.get(name, "") != "":
            data[name] = to_int(form.get(name), form.get(name))
    return data


@bp.post("/reportes/<slug>/programar")
@auth.permission_required("reports.view")
def schedule(slug: str):
    chosen = reporting.BY_SLUG.get(slug)
    if chosen is None:
        abort(404)
    form = request.form
    filters = MultiDict([(k, v) for k, v in form.items(multi=True)
                         if k not in ("csrf_token", *SCHEDULE_FIELDS)])
    try:
        data = _schedule_from_form(chosen, filters, form)
        with rpc() as proxy:
            proxy.reports.save_schedule(data)
    except InvalidInput as exc:
        values = {k: form.get(k, "") for k in SCHEDULE_FIELDS}
        problems = {k: (v if isinstance(v, list) else [str(v)]) for k, v in exc.fields.items()}
        if isinstance(exc.fields.get("filters"), dict):
            problems.update({k: v for k, v in exc.fields["filters"].items()})
        if isinstance(exc.fields.get("recipients"), dict):
            problems["recipients"] = [p for v in exc.fields["recipients"].values() for p in v]
        return _report_page(slug, filters, {"values": values, "errors": problems,
                                            "open": True})
    return redirect(url_for(".schedules", done="1"))


@bp.get("/reportes/programados")
@auth.permission_required("reports.view")
def schedules():
    with rpc() as proxy:
        items = proxy.reports.list_schedules()
        institutions = {i["id"]: i["code"] for i in proxy.portfolio.list_institutions()}
    for item in items:   # the next run in the schedule's own zone, as it was asked for
        moment = datetime.fromisoformat(item["next_run_at"]).astimezone(ZoneInfo(item["time_zone"]))
        item["next_local"] = format_datetime(moment, "short", rebase=False)
    return render_template("reports/schedules.html", items=items, institutions=institutions,
                           reports=reporting.REPORTS, notice=request.args.get("done"),
                           FREQUENCIES=translated(FREQUENCIES),
                           WEEKDAYS=[_(d) for d in WEEKDAYS],
                           RUN_STATES=translated(RUN_STATES))


@bp.post("/reportes/programados/<int:schedule_id>/ejecutar")
@auth.permission_required("reports.view")
def run_now(schedule_id: int):
    with rpc() as proxy:
        proxy.reports.run_schedule(schedule_id)
    return redirect(url_for(".schedules"))


@bp.post("/reportes/programados/<int:schedule_id>/cancelar")
@auth.permission_required("reports.view")
def cancel(schedule_id: int):
    with rpc() as proxy:
        proxy.reports.delete_schedule(schedule_id)
    return redirect(url_for(".schedules"))


@bp.get("/reportes/ejecuciones/<int:run_id>")
@auth.permission_required("reports.view")
def run_file(run_id: int):
    with rpc() as proxy:
        found = proxy.reports.run_file(run_id)
    return Response(base64.b64decode(found["content_b64"]), mimetype=found["content_type"],
                    headers={"Content-Disposition":
                             f'attachment; filename="{found["filename"]}"'})
