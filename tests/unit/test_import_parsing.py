"""Bulk imports without a database: layouts against the catalogue, header mapping, reading
the header in the layout's encoding, XLSX cells, and the SQL the layout turns into."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest

from portfolio import import_read, import_sql, imports
from portfolio.contracts import (ENCODINGS, FIELDS, MANDATORY, LayoutWrite, layout_problems,
                                 normalize_header)
from portfolio.import_read import (ImportFailed, cell_text, plan_for, read_header,
                                   without_trailing_blank_lines)
from portfolio.imports import check_file_name, check_size
from portfolio.models import ImportLayout
from portfolio.seed import DEMO_DIR, DEMO_LAYOUTS
from recaudo_common.errors import InvalidInput
from recaudo_common.validation import load

PAYMENTS = {"account_number": "Cuenta", "amount": "Importe", "value_date": "Fecha",
            "reference": "Referencia"}


def layout(kind="payments", columns=None, required=(), **options):
    values = {"institution_id": 1, "kind": kind, "file_format": "csv", "encoding": "utf-8",
              "delimiter": ",", "date_format": "%Y-%m-%d", "decimal_separator": ".",
              "thousands_separator": "", "columns": columns or PAYMENTS,
              "required": list(required)}
    values.update(options)
    return ImportLayout(**values)


# --- layouts -------------------------------------------------------------------------------

def test_layout_schema_accepts_a_good_layout_and_names_each_problem():
    good = load(LayoutWrite(), {"institution_id": 1, "name": "Pagos", "kind": "payments",
                                "columns": PAYMENTS, "delimiter": ";", "encoding": "latin-1",
                                "date_format": "%d/%m/%Y", "decimal_separator": ",",
                                "thousands_separator": "."})
    assert good["required"] == [] and good["file_format"] == "csv"

    def problems_of(**changes):
        data = {"institution_id": 1, "name": "x", "kind": "payments", "columns": PAYMENTS,
                **changes}
        with pytest.raises(InvalidInput) as err:
            load(LayoutWrite(), data)
        return err.value.fields

    assert "kind" in problems_of(kind="cartera")
    assert "encoding" in problems_of(encoding="utf-16")
    assert "delimiter" in problems_of(delimiter=";;")
    assert "date_format" in problems_of(date_format="%d de %B")
    assert "file_format" in problems_of(file_format="xls")
    assert problems_of(columns={**PAYMENTS, "talla": "Talla"})["columns"] == [
        "Campos desconocidos: talla"]
    assert "Faltan campos obligatorios: reference" in problems_of(
        columns={k: v for k, v in PAYMENTS.items() if k != "reference"})["columns"]
    assert "required" in problems_of(columns=PAYMENTS, required=["name"])
    assert "columns" in problems_of(columns={**PAYMENTS, "reference": " cuenta "})
    assert "thousands_separator" in problems_of(decimal_separator=",", thousands_separator=",")


def test_schedule_fields_go_together():
    base = {f: f.upper() for f in MANDATORY["portfolio"]}
    assert layout_problems({"kind": "portfolio", "columns": base}) == {}
    half = {**base, "instalment_count": "PLAZO", "instalment_amount": "CUOTA"}
    assert "columns" in layout_problems({"kind": "portfolio", "columns": half})
    paid_alone = {**base, "instalments_paid": "PAGADAS"}
    assert "columns" in layout_problems({"kind": "portfolio", "columns": paid_alone})


def test_catalogue_offers_every_field_with_its_mandatory_flag():
    offered = imports.catalogue()
    for kind, fields in FIELDS.items():
        names = {f["field"] for f in offered["fields"][kind]}
        assert names == set(fields)
        assert {f["field"] for f in offered["fields"][kind] if f["mandatory"]} == \
            set(MANDATORY[kind])
    assert "%d/%m/%Y" in [d["format"] for d in offered["date_formats"]]


# --- header mapping --------------------------------------------------------------------------

def test_headers_match_trimmed_and_case_insensitively():
    assert normalize_header("  Núm.   Cliente ") == normalize_header("núm. cliente")
    plan = plan_for(7, layout(), [" CUENTA", "importe ", "Fecha", "referencia", "Extra"])
    assert {f: (c.column, c.header) for f, c in plan.columns.items()} == {
        "account_number": ("c1", "CUENTA"), "amount": ("c2", "importe"),
        "value_date": ("c3", "Fecha"), "reference": ("c4", "referencia")}
    assert all(c.required for c in plan.columns.values())
    assert plan.file_columns == 5 and plan.stage == "portfolio_import.stage_7"


def test_missing_required_columns_are_named_and_optional_ones_skipped():
    columns = {**{f: f.title() for f in MANDATORY["portfolio"]}, "email": "Correo",
               "phone1": "Tel"}
    portfolio = layout("portfolio", columns, required=["phone1"])
    with pytest.raises(ImportFailed) as err:
        plan_for(1, portfolio, ["Customer_Number", "Name", "Account_Number", "Correo"])
    assert str(err.value) == "Faltan columnas obligatorias en el archivo: «Balance», «Tel»"
    plan = plan_for(1, portfolio, ["Customer_Number", "Name", "Account_Number", "Balance",
                                   "Tel"])
    assert "email" not in plan.columns and plan.columns["phone1"].required


def test_a_schedule_needs_all_its_columns_in_the_file():
    columns = {**{f: f for f in MANDATORY["portfolio"]}, "instalment_count": "plazo",
               "instalment_amount": "cuota", "first_due_date": "primero",
               "instalments_paid": "pagadas"}
    portfolio = layout("portfolio", columns)
    with pytest.raises(ImportFailed, match="«primero»"):
        plan_for(1, portfolio, [*MANDATORY["portfolio"], "plazo", "cuota"])
    plan = plan_for(1, portfolio, [*MANDATORY["portfolio"], "pagadas"])
    assert "instalments_paid" not in plan.columns  # meaningless without a schedule


# --- reading the header ------------------------------------------------------------------------

def pieces(data: bytes, size=7):
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_header_is_read_in_the_layouts_encoding_and_delimiter():
    data = "\ufeffCuenta;Importe;Fecha;Referencia\r\nA-1;1,5;2024-01-01;R\r\n".encode()
    headers, buffered, rest = read_header(pieces(data), layout(delimiter=";"))
    assert headers == ["Cuenta", "Importe", "Fecha", "Referencia"]
    assert buffered + b"".join(rest) == data  # nothing lost: COPY gets every byte

    latin = "Número;Año\n1;2\n".encode("latin-1")
    headers, _, _ = read_header([latin], layout(delimiter=";", encoding="latin-1"))
    assert headers == ["Número", "Año"]
    with pytest.raises(ImportFailed, match="codificación utf-8"):
        read_header([latin], layout(delimiter=";"))
    with pytest.raises(ImportFailed, match="UTF-16"):
        read_header(["Cuenta,Importe\n".encode("utf-16")], layout())
    with pytest.raises(ImportFailed, match="vacío"):
        read_header([], layout())
    with pytest.raises(ImportFailed, match="vacío"):
        read_header([b"\r\n  "], layout())
    quoted = b'"Cuenta","Importe, MXN"\n'
    assert read_header([quoted], layout())[0] == ["Cuenta", "Importe, MXN"]


def test_too_many_columns_or_no_line_end_fail_clearly(monkeypatch):
    with pytest.raises(ImportFailed, match="columnas"):
        read_header([(",".join(f"c{i}" for i in range(600)) + "\n").encode()], layout())
    monkeypatch.setattr(import_read, "MAX_HEADER_BYTES", 100)
    with pytest.raises(ImportFailed, match="encabezado"):
        read_header([b"x" * 60, b"y" * 60], layout())


@pytest.mark.parametrize("data, expected", [
    (b"h\na\nb\n", b"h\na\nb\n"),
    (b"h\na\nb\n\n\n", b"h\na\nb\n"),
    (b"h\r\na\r\n\r\n\r\n", b"h\r\na\r\n"),
    (b"h\na\nb", b"h\na\nb"),
    (b"h\n\na\n", b"h\n\na\n"),          # a blank line inside stays: COPY reports it
])
def test_only_trailing_blank_lines_are_dropped(data, expected):
    for size in (1, 2, 3, 100):
        assert b"".join(without_trailing_blank_lines(pieces(data, size))) == expected


# --- XLSX cells ----------------------------------------------------------------------------------

def test_xlsx_cells_become_the_text_the_layout_expects():
    dmy = layout(date_format="%d/%m/%Y", decimal_separator=",")
    assert cell_text(datetime(2024, 2, 29, 0, 0), dmy) == "29/02/2024"
    assert cell_text(date(2024, 1, 5), dmy) == "05/01/2024"
    assert cell_text(1234.56, dmy) == "1234,56"        # the double's shortest decimal
    assert cell_text(0.1 + 0.2, dmy) == "0,30000000000000004"  # never silently rounded
    assert cell_text(1500.0, dmy) == "1500"
    assert cell_text(5512345678, dmy) == "5512345678"
    assert cell_text(Decimal("10.50"), dmy) == "10,50"
    assert cell_text(None, dmy) is None and cell_text(" x ", dmy) == " x "
    assert cell_text(1e20, layout()) == "100000000000000000000"


def test_openpyxl_round_trip_of_a_sheet():
    book = openpyxl.Workbook()
    book.active.append(["Cuenta", "Importe", "Fecha"])
    book.active.append(["A-1", 99.99, datetime(2024, 3, 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    rows = list(openpyxl.load_workbook(buffer, read_only=True, data_only=True)
                .worksheets[0].iter_rows(values_only=True))
    assert [cell_text(v, layout()) for v in rows[1]] == ["A-1", "99.99", "2024-03-01"]


# --- uploads --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x.csv", "a/b.csv", "a\\b.csv", "x\x00.csv", "x\n.csv",
                                  "", "   ", "x.xlsx", "x.csv.exe", "a" * 252 + ".csv"])
def test_bad_file_names_are_refused(name):
    with pytest.raises(InvalidInput):
        check_file_name(name, "csv")


def test_good_file_names_and_sizes():
    assert check_file_name(" Cartera Enero 2024.CSV ", "csv") == "Cartera Enero 2024.CSV"
    assert check_size(1) == 1
    with pytest.raises(InvalidInput, match="vacío"):
        check_size(0)
    with pytest.raises(InvalidInput, match="MiB"):
        check_size(imports.MAX_IMPORT_BYTES + 1)


# --- the generated SQL ------------------------------------------------------------------------------

def test_generated_sql_carries_no_file_text():
    """Headers come from the file: they reach SQL only as bound parameters."""
    evil = "Cuenta'); DROP TABLE portfolio.debtors; --"
    plan = plan_for(3, layout(columns={**PAYMENTS, "account_number": evil}),
                    [evil, "Importe", "Fecha", "Referencia"])
    for statement in [import_sql.stage_ddl(plan), import_sql.flags_sql(plan),
                      import_sql.parse_sql(plan), import_sql.problems_sql(plan),
                      *import_sql.payments_merge(plan)]:
        assert "DROP TABLE portfolio" not in statement
    assert plan.headers["account_number"] == evil


def test_every_field_type_and_date_format_has_sql():
    for kind, fields in FIELDS.items():
        columns = {name: name for name in fields}
        if kind == "portfolio":
            plan = plan_for(1, layout(kind, columns), list(columns))
            statements = import_sql.portfolio_merge(plan)
        else:
            plan = plan_for(1, layout(kind, columns), list(columns))
            statements = import_sql.payments_merge(plan)
        assert import_sql.parse_sql(plan).startswith("CREATE TEMP TABLE imp_parsed")
        assert statements
    for fmt in import_sql.DATE_FORMATS:
        assert "make_date" in import_sql.date_expr("r", fmt)


def test_lit_quotes_and_refuses_nul():
    assert import_sql.lit("O'Brien") == "'O''Brien'"
    assert import_sql.lit(None) == "NULL" and import_sql.lit(3) == "3"
    with pytest.raises(ValueError):
        import_sql.lit("a\x00b")


# --- demo layouts and files -------------------------------------------------------------------------

def _demo_headers(path, values):
    if path.suffix == ".xlsx":
        sheet = openpyxl.load_workbook(path, read_only=True).worksheets[0]
        return [str(v) for v in next(sheet.iter_rows(values_only=True))]
    codec = ENCODINGS[values["encoding"]][1]
    text = path.read_bytes().decode(codec)  # the whole file decodes in the layout's encoding
    return next(csv.reader(io.StringIO(text), delimiter=values["delimiter"]))


def test_every_demo_institution_has_a_portfolio_and_a_payments_layout():
    """The demo's past keeps promises by importing payments through each institution's
    payments layout: without one, an institution's recovery reads $0 (issue 19)."""
    from recaudo_common import demo

    for institution_id, code, _ in demo.INSTITUTIONS:
        kinds = sorted(v["kind"] for i, _, _, v in DEMO_LAYOUTS if i == institution_id)
        assert kinds == ["payments", "portfolio"], code


@pytest.mark.parametrize("index", range(len(DEMO_LAYOUTS)))
def test_demo_layouts_are_valid_and_match_their_files(index):
    institution_id, name, file_name, values = DEMO_LAYOUTS[index]
    assert institution_id in (1, 2, 3)
    assert layout_problems(values) == {}
    path = DEMO_DIR / file_name
    assert path.suffix == "." + values["file_format"]
    demo = layout(**{k: v for k, v in values.items() if k != "required"},
                  required=values["required"])
    plan = plan_for(1, demo, _demo_headers(path, values))
    assert set(plan.columns) == set(values["columns"])  # every mapped column is in the file
