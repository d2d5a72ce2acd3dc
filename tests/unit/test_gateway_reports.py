"""The gateway's report pieces that need no broker: reading and checking filters, turning an
answer into a labelled table, and the CSV, XLSX and PDF exports of that table."""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from werkzeug.datastructures import MultiDict

from gateway import reporting
from gateway.app import create_app
from recaudo_common.errors import InvalidInput

TODAY = date(2025, 3, 15)
PRODUCTIVITY = reporting.REPORTS["productivity"]
AGING = reporting.REPORTS["aging"]


@pytest.fixture
def ctx():
    with create_app(testing=True).test_request_context("/"):
        yield


def parse(report, **args):
    return reporting.parse(report, MultiDict(args), TODAY)


def test_defaults_are_this_month_and_the_reports_own_groups(ctx):
    assert parse(PRODUCTIVITY) == {"date_from": "2025-03-01", "date_to": "2025-03-15",
                                   "group_by": ["agent"]}
    assert parse(AGING) == {"as_of": "2025-03-15", "group_by": ["stage"]}
    query = reporting.parse(PRODUCTIVITY, MultiDict([("group_by", "day"), ("group_by", "team"),
                                                     ("institution_id", "2")]), TODAY)
    assert query["group_by"] == ["day", "team"] and query["institution_id"] == 2


@pytest.mark.parametrize("report,args,field", [
    (PRODUCTIVITY, {"date_from": "2025-03-10", "date_to": "2025-03-01"}, "date_to"),
    (PRODUCTIVITY, {"date_from": "2023-01-01", "date_to": "2025-03-01"}, "date_to"),
    (PRODUCTIVITY, {"date_from": "ayer"}, "date_from"),
    (PRODUCTIVITY, {"color": "rojo"}, "color"),
    (PRODUCTIVITY, {"stage": "current"}, "stage"),          # not a filter of this report
    (PRODUCTIVITY, {"as_of": "2025-03-01"}, "as_of"),
    (PRODUCTIVITY, {"group_by": "planeta"}, "group_by"),
    (PRODUCTIVITY, {"agent_id": "-3"}, "agent_id"),
    (PRODUCTIVITY, {"format": "docx"}, "format"),
    (AGING, {"stage": "perdida"}, "stage"),
    (AGING, {"date_from": "2025-03-01"}, "date_from"),
    (reporting.REPORTS["roll-rates"], {"group_by": "day"}, "group_by"),
])
def test_bad_filters_name_the_field(ctx, report, args, field):
    with pytest.raises(InvalidInput) as refused:
        parse(report, **args)
    assert field in refused.value.fields


ANSWER = {"group_by": ["agent"], "rows": [
    {"agent_id": 7, **{c.key: 0 for c in PRODUCTIVITY.columns}, "activities": 12, "calls": 10,
     "contacts": 4, "contact_rate": "0.3333", "promised_amount": "1250.50",
     "amount_recovered": "99.99", "kept_rate": None}],
    "totals": {**{c.key: 0 for c in PRODUCTIVITY.columns}, "activities": 12, "calls": 10,
               "contacts": 4, "contact_rate": "0.3333", "promised_amount": "1250.50",
               "amount_recovered": "99.99", "kept_rate": None}}


def _table():
    names = reporting.Names(agents={7: "Carla Ruiz"}, institutions={1: "BANCOMER"})
    query = {"date_from": "2025-03-01", "date_to": "2025-03-15", "institution_id": 1,
             "group_by": ["agent"]}
    return reporting.tabulate(PRODUCTIVITY, ANSWER, names, query)


def test_the_table_labels_ids_and_keeps_types(ctx):
    table = _table()
    assert [c.label for c in table.columns[:3]] == ["Gestor", "Gestiones", "Llamadas"]
    assert table.rows[0][:3] == ["Carla Ruiz", 12, 10]
    assert table.totals[0] == "Total"
    assert ("Institución", "BANCOMER") in table.filters


def test_xlsx_round_trip(ctx):
    sheet = load_workbook(io.BytesIO(reporting.to_xlsx(_table()))).active
    header = reporting.xlsx_header_row(sheet)
    rows = list(sheet.iter_rows(min_row=header, values_only=True))
    titles = rows[0]
    first = dict(zip(titles, rows[1]))
    assert first["Gestor"] == "Carla Ruiz" and first["Gestiones"] == 12
    assert Decimal(str(first["Monto prometido"])) == Decimal("1250.50")
    assert first["Tasa de cumplimiento"] is None
    assert rows[2][0] == "Total"


def test_csv_and_pdf(ctx):
    lines = list(csv.reader(io.StringIO(reporting.to_csv(_table()).decode("utf-8-sig"))))
    assert lines[0][0] == "Gestor" and lines[1][:2] == ["Carla Ruiz", "12"]
    assert reporting.to_pdf(_table()).startswith(b"%PDF")


def test_every_report_has_an_api_route_and_a_page(ctx):
    app = create_app(testing=True)
    paths = app.test_client().get("/api/v1/openapi.json").json["paths"]
    for report in reporting.REPORTS.values():
        params = {p["name"] for p in paths[f"/api/v1/reports/{report.key}"]["get"]["parameters"]}
        assert "format" in params and set(report.filters) <= params
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert {"/reportes", "/reportes/<slug>", "/portal", "/tableros/supervisor",
            "/tableros/supervisor/eventos", "/tableros/institucion"} <= rules
