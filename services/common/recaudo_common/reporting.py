"""What every report shares, written once: the date range and its limits, the report
filters' schema, the days-past-due buckets; and the catalogue of reports with their
labels, the table a report's answer becomes and its CSV, XLSX and PDF exports (used by
the gateway's pages and API and by the reports service's scheduled mailings).

Each service loads its report queries through ``ReportQuery`` (or a subclass), so a
range that ends before it starts, one over ``MAX_RANGE_DAYS`` or an unknown filter is
refused with 422 naming the field, the same way whether the gateway or a partner's
script made the call.
"""
from __future__ import annotations

import contextvars
import csv
import io
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from marshmallow import ValidationError, fields, validate, validates_schema

from .validation import Schema

#: the longest range a report covers (a year and a day: a leap year's full year)
MAX_RANGE_DAYS = 366

#: days-past-due buckets: (code, label, lowest day, highest day or None)
BUCKETS = (
    ("current", "Al corriente", None, 0),
    ("1_30", "1–30", 1, 30),
    ("31_60", "31–60", 31, 60),
    ("61_90", "61–90", 61, 90),
    ("91_180", "91–180", 91, 180),
    ("over_180", "Más de 180", 181, None),
)
BUCKET_CODES = tuple(b[0] for b in BUCKETS)


def bucket_sql(column: str) -> str:
    """SQL giving the bucket number (0-5, in ``BUCKETS`` order) of a days-past-due column."""
    return (f"CASE WHEN {column} <= 0 THEN 0 WHEN {column} <= 30 THEN 1 "
            f"WHEN {column} <= 60 THEN 2 WHEN {column} <= 90 THEN 3 "
            f"WHEN {column} <= 180 THEN 4 ELSE 5 END")


def _id(**kwargs):
    return fields.Integer(load_default=None, allow_none=True,
                          validate=validate.Range(min=0, max=2_147_483_647), **kwargs)


class DateRange(Schema):
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)

    @validates_schema
    def _range(self, data, **_):
        if "date_from" not in data or "date_to" not in data:
            return
        if data["date_to"] < data["date_from"]:
            raise ValidationError("El fin no puede ser anterior al inicio", "date_to")
        if (data["date_to"] - data["date_from"]).days > MAX_RANGE_DAYS:
            raise ValidationError(f"A lo más {MAX_RANGE_DAYS} días", "date_to")


def group_field(choices: tuple, default: list) -> fields.List:
    return fields.List(fields.String(validate=validate.OneOf(choices)),
                       load_default=lambda: list(default), validate=validate.Length(max=4))


class ReportQuery(DateRange):
    """The filters a report may take; each report's schema keeps the ones it honours."""

    institution_id = _id()
    team_id = _id()
    agent_id = _id()
    queue_id = _id()


# --- the reports, their labels, tables and exports ---------------------------------------------
# The registry and the rendering are shared by the gateway (pages, API downloads) and the
# reports service (scheduled mailings). Labels are Spanish, marked with ``N_``; whoever
# renders sets the translation for the call with ``translating(gettext)``.

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


#: the formats every report exports to (JSON is the API's default)
FORMATS = ("json", "csv", "xlsx", "pdf")
MIME = {"csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pdf": "application/pdf", "json": "application/json"}

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


# --- exports ----------------------------------------------------------------------------------

def _number(value, kind: str):
    """A cell as a number for a spreadsheet (money and rates as Decimal, never float)."""
    if value is None or value == "":
        return None
    if kind in ("money", "rate"):
        return Decimal(str(value))
    if kind == "int":
        return int(value)
    return value


def to_csv(table: Table) -> bytes:
    """UTF-8 with a BOM (so Excel reads the accents), one header line, plain decimals."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.label for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in row])
    if table.totals:
        writer.writerow(["" if v is None else v for v in table.totals])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(table: Table) -> bytes:
    """A sheet with the title, the filters, the header, the rows and the totals; numbers
    stay numbers (money with two decimals, rates as percentages)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = table.title[:31]
    sheet.append([table.title])
    sheet["A1"].font = Font(bold=True, size=14)
    for label, value in table.filters:
        sheet.append([label, value])
    if table.note:
        sheet.append([table.note])
    sheet.append([])
    sheet.append([c.label for c in table.columns])
    header = sheet.max_row
    for cell in sheet[header]:
        cell.font = Font(bold=True)
    formats = {"money": "#,##0.00", "rate": "0.00%", "int": "#,##0"}
    for row in table.rows + ([table.totals] if table.totals else []):
        sheet.append([_number(v, c.kind) for v, c in zip(row, table.columns)])
        for cell, column in zip(sheet[sheet.max_row], table.columns):
            if column.kind in formats and cell.value is not None:
                cell.number_format = formats[column.kind]
    if table.totals:
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
    for index, column in enumerate(table.columns, start=1):
        sheet.column_dimensions[sheet.cell(header, index).column_letter].width = \
            max(10, min(40, len(column.label) + 4))
    sheet.freeze_panes = sheet.cell(header + 1, 1)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def xlsx_header_row(sheet) -> int:
    """The row of the column headers in a sheet ``to_xlsx`` wrote (for readers and tests):
    the first row after the blank line under the title and filters."""
    for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        if all(v is None for v in row):
            return number + 1
    raise ValueError("no header row")


def _shown(value, kind: str) -> str:
    if value is None or value == "":
        return ""
    if kind == "money":
        return f"{Decimal(str(value)):,.2f}"
    if kind == "rate":
        return f"{Decimal(str(value)) * 100:.1f} %"
    if kind == "int":
        return f"{int(value):,}"
    return str(value)


def to_pdf(table: Table) -> bytes:
    """A printable landscape page (or pages) with the title, filters and the table."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer
    from reportlab.platypus import Table as PdfTable
    from reportlab.platypus import TableStyle

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=28, rightMargin=28,
                            topMargin=28, bottomMargin=28, title=table.title)
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8)
    story = [Paragraph(table.title, styles["Title"])]
    filters = " · ".join(f"{label}: {value}" for label, value in table.filters)
    if filters:
        story.append(Paragraph(filters, styles["BodyText"]))
    if table.note:
        story.append(Paragraph(table.note, styles["BodyText"]))
    story.append(Spacer(1, 8))
    data = [[Paragraph(c.label, small) for c in table.columns]]
    data += [[_shown(v, c.kind) for v, c in zip(row, table.columns)] for row in table.rows]
    if table.totals:
        data.append([_shown(v, c.kind) for v, c in zip(table.totals, table.columns)])
    if len(data) == 1:
        data.append([_("Sin datos")] + [""] * (len(table.columns) - 1))
    grid = PdfTable(data, repeatRows=1)
    style = [("FONTSIZE", (0, 0), (-1, -1), 7), ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef6")),
             ("VALIGN", (0, 0), (-1, -1), "TOP")]
    for index, column in enumerate(table.columns):
        if column.kind in ("int", "money", "rate"):
            style.append(("ALIGN", (index, 1), (index, -1), "RIGHT"))
    if table.totals:
        style.append(("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"))
    grid.setStyle(TableStyle(style))
    story.append(grid)
    story.append(Spacer(1, 6))
    story.append(Paragraph(datetime.now().strftime("%Y-%m-%d %H:%M"), small))
    doc.build(story)
    return buffer.getvalue()


EXPORTERS = {"csv": to_csv, "xlsx": to_xlsx, "pdf": to_pdf}


def filename(report: Report, query: dict, fmt: str) -> str:
    stamp = query.get("date_to") or query.get("as_of") or date.today().isoformat()
    return f"reporte-{report.slug}-{stamp}.{fmt}"
