"""Reports as the gateway serves them: reading and checking a report request's filters, and
the shared registry, tables and exports (``recaudo_common.reporting``, also used by the
reports service's scheduled mailings) rendered in the request's language.

Each report's query lives in the service that owns its data (activities: productivity,
promises, disputes; portfolio: aging, roll rates; queues: recovery, champion vs
challenger), which checks ``reports.view`` and the caller's institutions itself. The
checks here only answer sooner and name the field: an unknown filter, one the report
does not take, a range ending before it starts or longer than ``MAX_RANGE_DAYS``.

The dashboards' queries (the supervisor's day, the institution overview) are read here
too: the API (``api/reports.py``) and the pages (``ui/dashboards.py``) share them.
"""
from __future__ import annotations

from datetime import date, timedelta

from flask_babel import gettext as _

from recaudo_common import report_catalogue as common
from recaudo_common.errors import InvalidInput
from recaudo_common.report_catalogue import (ARMS, BUCKET_LABELS, BY_SLUG,  # noqa: F401
                                             DIRECTIONS, FILTER_LABELS, GROUP_KEYS,
                                             GROUP_LABELS, REPORTS, STAGES, Column, Names,
                                             Report, Table, run)
from recaudo_common.report_exports import (EXPORTERS, FORMATS, MIME, filename,  # noqa: F401
                                           xlsx_header_row)
from recaudo_common.reporting import MAX_RANGE_DAYS

from . import timefmt


#: every query-string name a report request may carry
KNOWN_ARGS = {"institution_id", "date_from", "date_to", "as_of", "team_id", "agent_id",
              "queue_id", "stage", "status_id", "group_by", "format", "page", "pagina"}
#: a UI page renders at most this many rows; a larger report is offered as a download
RENDER_LIMIT = 2000
PER_PAGE = 50


def parse(report: Report, args, today: date, *, ignore=("format", "page")) -> dict:
    """The service query for ``report`` from request arguments (a MultiDict). Unknown
    arguments, filters the report does not take and bad values raise InvalidInput naming
    the field; nothing is silently dropped."""
    problems: dict[str, list[str]] = {}
    for name in args.keys():
        if name not in KNOWN_ARGS:
            problems[name] = [_("Filtro desconocido")]
        elif name not in ignore and name not in (*report.filters, "group_by") and \
                name not in (("date_from", "date_to") if report.dated else ("as_of",)):
            problems[name] = [_("Este reporte no se filtra por este campo")]
    query: dict = {}

    def day(name, default):
        raw = (args.get(name) or "").strip()
        if not raw:
            return default
        try:
            return date.fromisoformat(raw)
        except ValueError:
            problems[name] = [_("Fecha inválida (AAAA-MM-DD)")]
            return default

    if report.dated:
        first, last = day("date_from", today.replace(day=1)), day("date_to", today)
        if "date_from" not in problems and "date_to" not in problems:
            if last < first:
                problems["date_to"] = [_("El fin no puede ser anterior al inicio")]
            elif (last - first).days > MAX_RANGE_DAYS:
                problems["date_to"] = [_("El periodo es de a lo más %(days)d días",
                                         days=MAX_RANGE_DAYS)]
        query.update(date_from=first.isoformat(), date_to=last.isoformat())
    else:
        query["as_of"] = day("as_of", today).isoformat()
    for name in ("institution_id", "team_id", "agent_id", "queue_id", "status_id"):
        raw = (args.get(name) or "").strip()
        if name in problems or not raw or name not in report.filters:
            continue
        if not raw.isdigit() or len(raw) > 9:
            problems[name] = [_("Se esperaba un número")]
        else:
            query[name] = int(raw)
    if "stage" in report.filters and (args.get("stage") or "").strip():
        if args["stage"] not in STAGES:
            problems["stage"] = [_("Etapa desconocida")]
        else:
            query["stage"] = args["stage"]
    if report.groups:
        wanted = [g for g in args.getlist("group_by") if g]
        unknown = [g for g in wanted if g not in report.groups]
        if unknown:
            problems["group_by"] = [_("Agrupación desconocida: %(names)s",
                                      names=", ".join(unknown))]
        query["group_by"] = wanted or list(report.default_groups)
    elif args.getlist("group_by"):
        problems.setdefault("group_by", [_("Este reporte no se agrupa")])
    fmt = args.get("format")
    if fmt is not None and fmt not in FORMATS:
        problems["format"] = [_("Formato desconocido (json, csv, xlsx, pdf)")]
    if problems:
        raise InvalidInput(_("Filtros inválidos"), problems)
    return query




def tabulate(report: Report, answer: dict, names: Names, query: dict) -> Table:
    """``recaudo_common.reporting.tabulate`` with this request's translations."""
    with common.translating(_):
        return common.tabulate(report, answer, names, query)


def export(fmt: str, table: Table) -> bytes:
    with common.translating(_):
        return EXPORTERS[fmt](table)


def to_csv(table: Table) -> bytes:
    return export("csv", table)


def to_xlsx(table: Table) -> bytes:
    return export("xlsx", table)


def to_pdf(table: Table) -> bytes:
    return export("pdf", table)


# --- the dashboards' queries (the supervisor's day, the institution overview) -----------------

OVERVIEW_DAYS = 30


def today() -> date:
    """Today as the reader's institution counts days."""
    return timefmt.institution_today()


def _number_filter(args, name: str):
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidInput(_("Filtro inválido"), {name: [_("Se esperaba un número")]})
    return int(raw)


def day_query(args) -> dict:
    """The supervisor's day query from the request (unknown arguments are refused)."""
    unknown = [k for k in args if k not in ("day", "team_id", "institution_id")]
    if unknown:
        raise InvalidInput(_("Filtro inválido"), {k: [_("Filtro desconocido")] for k in unknown})
    raw = (args.get("day") or "").strip()
    try:
        day = date.fromisoformat(raw) if raw else today()
    except ValueError:
        raise InvalidInput(_("Filtro inválido"),
                           {"day": [_("Fecha inválida (AAAA-MM-DD)")]}) from None
    return {"day": day.isoformat(), "team_id": _number_filter(args, "team_id"),
            "institution_id": _number_filter(args, "institution_id"), "time_zone": str(timefmt.reader_zone())}


def institution_arg(args):
    unknown = [k for k in args if k not in ("institution_id", "done")]
    if unknown:
        raise InvalidInput(_("Filtro inválido"), {k: [_("Filtro desconocido")] for k in unknown})
    return _number_filter(args, "institution_id")


def overview(proxy, institution_id, day: date) -> dict:
    """The institution's (or all the caller's institutions') figures at a glance: aging by
    bucket today, and over the last 30 days recovery and activity per day, promises and
    disputes. Each part comes from the report of the service that owns it."""
    since = (day - timedelta(days=OVERVIEW_DAYS - 1)).isoformat()
    scope = {"institution_id": institution_id} if institution_id is not None else {}
    period = {"date_from": since, "date_to": day.isoformat(), **scope}
    return {
        "institution_id": institution_id, "date_from": since, "date_to": day.isoformat(),
        "aging": proxy.portfolio.report_aging({"as_of": day.isoformat(), "group_by": [],
                                               **scope}),
        "recovery": proxy.queues.report_recovery({**period, "group_by": ["day"]}),
        "productivity": proxy.activities.report_productivity({**period, "group_by": ["day"]}),
        "promises": proxy.activities.report_promises({**period, "group_by": ["institution"]}),
        "disputes": proxy.activities.report_disputes({**period, "group_by": ["institution"]}),
    }
