"""A report's table as a file: CSV (UTF-8 with a BOM), XLSX (numbers stay numbers) and a
printable PDF, for the gateway's downloads and the reports service's mailings alike."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

from .report_catalogue import Report, Table, _

#: the formats every report exports to (JSON is the API's default)
FORMATS = ("json", "csv", "xlsx", "pdf")
MIME = {"csv": "text/csv; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pdf": "application/pdf", "json": "application/json"}


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
