"""The catalogue of reports, in Spanish: each report with the service and RPC that answer
it, its filters, groupings and columns, the labels of what it shows, and the table an answer
becomes (labels for ids, typed cells). Shared by the two processes that show reports - the
gateway (pages, API downloads) and the reports service (scheduled mailings) - so it is
written once here; the files a table becomes are ``report_exports``.

Labels are Spanish, marked with ``N_``; whoever renders sets the translation for the call
with ``translating(gettext)``.
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field

from .reporting import BUCKETS

def _plain(message: str, **variables) -> str:
    return message % variables if variables else message


_gettext = contextvars.ContextVar("report_gettext", default=_plain)


def _(message: str, **variables) -> str:
    return _gettext.get()(message, **variables)


@contextmanager
def translating(gettext):
    """Render labels with ``gettext`` (e.g. flask_babel's) within the block."""
    token = _gettext.set(gettext)
    try:
        yield
    finally:
        _gettext.reset(token)


def N_(message: str) -> str:
    return message


STAGES = {"current": N_("Al corriente"), "delinquent": N_("Moroso"), "litigation": N_("Litigio")}
BUCKET_LABELS = {code: label for code, label, _low, _high in BUCKETS}
ARMS = {"champion": N_("Campeona"), "challenger": N_("Retadora"), "none": N_("Sin fila")}
DIRECTIONS = {"better": N_("Mejora"), "same": N_("Se mantiene"), "worse": N_("Empeora")}

GROUP_LABELS = {"day": N_("Día"), "agent": N_("Gestor"), "team": N_("Equipo"),
                "institution": N_("Institución"), "queue": N_("Fila"), "stage": N_("Etapa"),
                "status": N_("Estatus"), "arm": N_("Brazo")}
FILTER_LABELS = {"institution_id": N_("Institución"), "date_from": N_("Desde"),
                 "date_to": N_("Hasta"), "as_of": N_("Fecha de corte"), "team_id": N_("Equipo"),
                 "agent_id": N_("Gestor"), "queue_id": N_("Fila"), "stage": N_("Etapa"),
                 "status_id": N_("Estatus"), "group_by": N_("Agrupar por")}


@dataclass(frozen=True)
class Column:
    key: str
    label: str           # marked with N_, translated when shown
    kind: str = "int"    # int | money | rate | text | date


def _c(key, label, kind="int") -> Column:
    return Column(key, label, kind)


@dataclass(frozen=True)
class Report:
    key: str                       # API name (/api/v1/reports/<key>)
    slug: str                      # UI address (/reportes/<slug>)
    title: str
    description: str
    service: str
    method: str
    filters: tuple                 # filter names the report takes (besides group_by)
    groups: tuple = ()             # allowed group_by values (empty: none)
    default_groups: tuple = ()
    columns: tuple = ()            # metric columns, after the group columns
    #: the answer's list of rows and the key of the "per row" label columns
    dated: bool = True             # takes date_from/date_to (else as_of)


PRODUCTIVITY_COLUMNS = (
    _c("activities", N_("Gestiones")), _c("calls", N_("Llamadas")), _c("visits", N_("Visitas")),
    _c("emails", N_("Correos")), _c("faxes", N_("Faxes")), _c("sms", N_("SMS")),
    _c("letters", N_("Cartas")), _c("notes", N_("Notas")), _c("contacts", N_("Contactos")),
    _c("contact_rate", N_("Tasa de contacto"), "rate"),
    _c("promises_made", N_("Promesas")), _c("promised_amount", N_("Monto prometido"), "money"),
    _c("promises_kept", N_("Cumplidas")), _c("kept_amount", N_("Monto cumplido"), "money"),
    _c("promises_broken", N_("Incumplidas")), _c("kept_rate", N_("Tasa de cumplimiento"), "rate"),
    _c("amount_recovered", N_("Recuperado"), "money"))

REPORTS: dict[str, Report] = {r.key: r for r in (
    Report("productivity", "productividad", N_("Productividad"),
           N_("Gestiones por tipo, contactos, promesas y recuperación por gestor, equipo, fila "
              "y día."), "activities", "report_productivity",
           ("institution_id", "team_id", "agent_id", "queue_id"),
           ("day", "agent", "team", "institution", "queue"), ("agent",), PRODUCTIVITY_COLUMNS),
    Report("recovery", "recuperacion", N_("Recuperación"),
           N_("Monto cobrado contra monto asignado, por institución y fila, en el tiempo."),
           "queues", "report_recovery", ("institution_id", "queue_id"),
           ("day", "institution", "queue", "arm"), ("institution", "queue"),
           (_c("payments", N_("Pagos")), _c("collected", N_("Cobrado"), "money"),
            _c("accounts_assigned", N_("Cuentas asignadas")),
            _c("balance_assigned", N_("Saldo asignado"), "money"),
            _c("recovery_rate", N_("Tasa de recuperación"), "rate"))),
    Report("aging", "antiguedad", N_("Antigüedad de cartera"),
           N_("Saldos y cuentas por días de atraso (al corriente, 1–30, 31–60, 61–90, 91–180, "
              "más de 180), por etapa y estatus."), "portfolio", "report_aging",
           ("institution_id", "stage", "status_id"), ("institution", "stage", "status"),
           ("stage",),
           (_c("bucket", N_("Días de atraso"), "text"), _c("accounts", N_("Cuentas")),
            _c("balance", N_("Saldo"), "money"), _c("overdue_amount", N_("Vencido"), "money"),
            _c("share_accounts", N_("Proporción de cuentas"), "rate"),
            _c("share_balance", N_("Proporción del saldo"), "rate")), dated=False),
    Report("roll-rates", "rodamiento", N_("Rodamiento"),
           N_("Proporción de cuentas que pasan de un tramo de atraso a otro de un mes al "
              "siguiente, de las fotografías diarias."), "portfolio", "report_roll_rates",
           ("institution_id",), (), (),
           (_c("month", N_("Mes"), "text"), _c("from_bucket", N_("Tramo anterior"), "text"),
            _c("to_bucket", N_("Tramo actual"), "text"),
            _c("direction", N_("Movimiento"), "text"), _c("accounts", N_("Cuentas")),
            _c("balance", N_("Saldo"), "money"), _c("share", N_("Proporción"), "rate"))),
    Report("promises", "promesas", N_("Promesas de pago"),
           N_("Cumplidas, incumplidas y pendientes, por gestor y fila."), "activities",
           "report_promises", ("institution_id", "team_id", "agent_id", "queue_id"),
           ("agent", "queue", "team", "institution"), ("agent",),
           (_c("made", N_("Hechas")), _c("promised_amount", N_("Monto prometido"), "money"),
            _c("kept", N_("Cumplidas")), _c("kept_amount", N_("Monto cumplido"), "money"),
            _c("broken", N_("Incumplidas")), _c("pending", N_("Pendientes")),
            _c("pending_amount", N_("Monto pendiente"), "money"),
            _c("kept_rate", N_("Tasa de cumplimiento"), "rate"))),
    Report("disputes", "aclaraciones", N_("Aclaraciones"),
           N_("Abiertas, vencidas contra el plazo y resueltas por resultado."), "activities",
           "report_disputes", ("institution_id", "agent_id"), ("institution", "agent"),
           ("institution",),
           (_c("opened", N_("Abiertas en el periodo")), _c("open", N_("Abiertas hoy")),
            _c("overdue", N_("Vencidas")), _c("resolved", N_("Resueltas")),
            _c("resolved_in_sla", N_("Resueltas en plazo")),
            _c("confirmed_debt", N_("Adeudo confirmado")),
            _c("corrected_balance", N_("Saldo corregido")), _c("cancelled", N_("Canceladas")))),
    Report("champion-challenger", "campeona-retadora", N_("Campeona contra retadora"),
           N_("Recuperación de cada brazo de la estrategia."), "queues",
           "report_champion_challenger", ("institution_id",), (), (),
           (_c("strategy", N_("Estrategia"), "text"), _c("arm", N_("Brazo"), "text"),
            _c("accounts_assigned", N_("Cuentas asignadas")),
            _c("balance_assigned", N_("Saldo asignado"), "money"),
            _c("payments", N_("Pagos")), _c("collected", N_("Cobrado"), "money"),
            _c("recovery_rate", N_("Tasa de recuperación"), "rate"),
            _c("collected_per_account", N_("Cobrado por cuenta"), "money"))),
)}
BY_SLUG = {r.slug: r for r in REPORTS.values()}


def run(proxy, report: Report, query: dict) -> dict:
    """The owning service's answer (it checks permission and scope again)."""
    return getattr(getattr(proxy, report.service), report.method)(query)


# --- labels for ids ---------------------------------------------------------------------------

@dataclass
class Names:
    """Display names of the ids a report answers (agents, teams, institutions, queues,
    statuses), looked up once per request with the caller's own identity."""

    institutions: dict = field(default_factory=dict)
    agents: dict = field(default_factory=dict)
    teams: dict = field(default_factory=dict)
    queues: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)

    @classmethod
    def load(cls, proxy, report: Report | None = None, query: dict | None = None) -> "Names":
        names = cls()
        institutions = proxy.portfolio.list_institutions()
        names.institutions = {i["id"]: i["code"] for i in institutions}
        wanted = set((query or {}).get("group_by") or ()) | {"agent", "team", "queue", "status"}
        if report is None or report.service == "activities" or "agent" in wanted:
            for team in proxy.auth.list_teams():
                names.teams[team["id"]] = team["name"]
                names.agents[team["supervisor_id"]] = team.get("supervisor") or \
                    f"#{team['supervisor_id']}"
                names.agents.update({m["id"]: m["display_name"] for m in team["members"]})
        if report is None or report.key in ("recovery", "productivity", "promises"):
            names.queues = {q["id"]: q["name"] for q in proxy.queues.report_queues(
                (query or {}).get("institution_id"))}
        if report is None or report.key == "aging":
            chosen = (query or {}).get("institution_id")
            for i in institutions if chosen is None else [{"id": chosen}]:
                names.statuses.update({s["id"]: s["name"]
                                       for s in proxy.portfolio.list_statuses(i["id"])})
        return names


GROUP_KEYS = {"day": "day", "agent": "agent_id", "team": "team_id",
              "institution": "institution_id", "queue": "queue_id", "stage": "stage",
              "status": "status_id", "arm": "arm"}


def _label(group: str, value, names: Names) -> str:
    if value is None:
        return {"status": _("Sin estatus")}.get(group, "")
    if group == "agent":
        return names.agents.get(value) or (_("Sistema") if value == 0 else f"#{value}")
    if group == "team":
        return names.teams.get(value, f"#{value}") if value else _("Sin equipo")
    if group == "institution":
        return names.institutions.get(value, f"#{value}")
    if group == "queue":
        return names.queues.get(value, f"#{value}") if value else _("Sin fila")
    if group == "stage":
        return _(STAGES.get(value, value))
    if group == "status":
        return names.statuses.get(value, f"#{value}")
    if group == "arm":
        return _(ARMS.get(value, value))
    return str(value)


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list]
    totals: list | None
    filters: list[tuple[str, str]]     # (label, value) as the reader sees them
    note: str = ""


def tabulate(report: Report, answer: dict, names: Names, query: dict) -> Table:
    """The service's answer as a table of display values (labels for ids, typed cells)."""
    groups = list(answer.get("group_by") or ())
    columns = [Column(GROUP_KEYS[g], GROUP_LABELS[g], "date" if g == "day" else "text")
               for g in groups] + list(report.columns)
    columns = [Column(c.key, _(c.label), c.kind) for c in columns]
    rows = []
    for item in answer.get("rows", ()):
        row = []
        for g in groups:
            row.append(_label(g, item.get(GROUP_KEYS[g]), names))
        for c in report.columns:
            value = item.get(c.key)
            if c.key in ("bucket", "from_bucket", "to_bucket"):
                value = _(BUCKET_LABELS.get(value, value or ""))
            elif c.key == "arm":
                value = _(ARMS.get(value, value))
            elif c.key == "direction":
                value = _(DIRECTIONS.get(value, value))
            row.append(value)
        rows.append(row)
    totals = None
    if isinstance(answer.get("totals"), dict) and rows:
        raw = answer["totals"]
        totals = ([_("Total")] + [""] * (len(groups) - 1) if groups else []) + \
            [raw.get(c.key) if c.kind in ("int", "money", "rate") else "" for c in report.columns]
        if not groups and report.columns and report.columns[0].kind == "text":
            totals[0] = _("Total")
    note = ""
    if report.key == "aging":
        note = (_("Fotografía del %(day)s", day=answer["snapshot_date"])
                if answer.get("snapshot_date") else "")
    if report.key == "champion-challenger" and answer.get("assigned_on"):
        note = _("Asignación al %(day)s", day=answer["assigned_on"])
    return Table(_(report.title), columns, rows, totals, describe_filters(query, names), note)


def describe_filters(query: dict, names: Names) -> list[tuple[str, str]]:
    out = []
    for key, value in query.items():
        if value in (None, "", []):
            continue
        if key == "group_by":
            shown = ", ".join(_(GROUP_LABELS[g]) for g in value)
        elif key.endswith("_id"):
            shown = _label(key[:-3] if key != "status_id" else "status", value, names)
        elif key == "stage":
            shown = _(STAGES[value])
        else:
            shown = str(value)
        out.append((_(FILTER_LABELS.get(key, key)), shown))
    return out
