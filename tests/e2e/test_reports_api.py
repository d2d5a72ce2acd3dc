"""Reports through the running gateway: figures on a fixed data set computed by hand, the
same report as JSON, CSV, XLSX (opened back with openpyxl and compared cell by cell) and
PDF; bad input answered 422 naming the field; and the creditor portal's isolation
through the API (a Cliente and an Integración key of institution 1 see nothing of
institution 2, not even by asking for it).

The fixed data are productivity rollup rows of February 2024 for two made-up agents of
institutions 1 and 2 (removed at the end); the agents have no names, so their label is
their id.
"""
from __future__ import annotations

import csv
import io
import secrets
from decimal import Decimal

import pytest
import requests
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from gateway.reporting import xlsx_header_row
from recaudo_common.config import settings

from .helpers import token

RUN = secrets.token_hex(3)
A1, A2 = 990_001, 990_002
FEB = "date_from=2024-02-01&date_to=2024-02-29"
ROWS = [  # day, agent, institution, calls, visits, notes, contacts, made, promised, recovered
    ("2024-02-05", A1, 1, 10, 2, 1, 6, 2, "1500.00", "300.00"),
    ("2024-02-06", A1, 1, 5, 0, 0, 1, 0, "0", "0"),
    ("2024-02-05", A2, 1, 4, 0, 0, 4, 1, "99.99", "49.50"),
    ("2024-02-05", A2, 2, 8, 0, 0, 3, 0, "0", "1000.00"),    # institution 2
]


@pytest.fixture(scope="module")
def data(stack, demo_users):
    engine = create_engine(settings().database_url)

    def clean():
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM activities.productivity_daily "
                              "WHERE agent_id IN (:a, :b)"), {"a": A1, "b": A2})

    clean()
    with engine.begin() as conn:
        for day, agent, institution, calls, visits, notes, contacts, made, promised, \
                recovered in ROWS:
            conn.execute(text(
                "INSERT INTO activities.productivity_daily (day, agent_id, institution_id,"
                " queue_id, calls, visits, notes, contacts, promises_made, promised_amount,"
                " amount_recovered) VALUES (:d, :a, :i, 0, :c, :v, :n, :ct, :m, :p, :r)"),
                {"d": day, "a": agent, "i": institution, "c": calls, "v": visits, "n": notes,
                 "ct": contacts, "m": made, "p": promised, "r": recovered})
    yield
    clean()
    engine.dispose()


class Client:
    def __init__(self, base_url: str, token: str):
        self.base_url, self.session = base_url, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=60)


@pytest.fixture(scope="module")
def clients(stack, demo_users, data):
    base = stack.base_url
    out = {name: Client(base, token(base, name, demo_users))
           for name in ("admin", "supervisor", "cliente", "gestor1")}
    admin = out["admin"]
    profiles = admin.session.get(base + "/api/v1/profiles", timeout=30).json()
    integracion = next(p["id"] for p in profiles if p["name"] == "Integración")
    user = admin.session.post(base + "/api/v1/users", json={
        "username": f"reportes-socio-{RUN}", "display_name": "Socio de reportes",
        "password": "reportes-socio-clave-1", "profile_id": integracion, "institutions": [1]},
        timeout=30).json()
    key = admin.session.post(base + "/api/v1/api-keys", json={
        "user_id": user["id"], "name": f"reportes {RUN}"}, timeout=30).json()
    out["partner"] = Client(base, key["key"])
    yield out
    engine = create_engine(settings().database_url)
    with engine.begin() as conn:
        for statement in ("DELETE FROM auth.api_keys WHERE user_id = :u",
                          "DELETE FROM auth.api_tokens WHERE user_id = :u",
                          "DELETE FROM auth.users WHERE id = :u"):
            conn.execute(text(statement), {"u": user["id"]})
    engine.dispose()


def test_productivity_figures_by_hand(clients):
    report = clients["supervisor"].get(
        f"/api/v1/reports/productivity?{FEB}&institution_id=1&group_by=agent").json()
    rows = {r["agent_id"]: r for r in report["rows"]}
    assert set(rows) >= {A1, A2}
    a1, a2 = rows[A1], rows[A2]
    # A1: 15 calls + 2 visits + 1 note = 18 activities; 7 contacts of 17 reachable
    assert (a1["activities"], a1["calls"], a1["visits"], a1["contacts"]) == (18, 15, 2, 7)
    assert a1["contact_rate"] == "0.4118"
    assert (a1["promises_made"], a1["promised_amount"], a1["amount_recovered"]) == \
        (2, "1500.00", "300.00")
    # A2 in institution 1 only (its 8 calls for institution 2 are another institution's)
    assert (a2["activities"], a2["contacts"], a2["contact_rate"]) == (4, 4, "1.0000")
    assert (a2["promised_amount"], a2["amount_recovered"]) == ("99.99", "49.50")


def test_the_xlsx_export_opens_and_matches_the_json(clients):
    path = f"/api/v1/reports/productivity?{FEB}&institution_id=1&agent_id={A1}&group_by=day"
    json_rows = clients["supervisor"].get(path).json()["rows"]
    assert [(r["day"], r["activities"]) for r in json_rows] == [("2024-02-05", 13),
                                                                ("2024-02-06", 5)]
    response = clients["supervisor"].get(path + "&format=xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert 'filename="reporte-productividad-2024-02-29.xlsx"' in \
        response.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet["A1"].value == "Productividad"
    header = xlsx_header_row(sheet)
    cells = [list(row) for row in sheet.iter_rows(min_row=header, values_only=True)]
    titles = cells[0]
    assert titles[:4] == ["Día", "Gestiones", "Llamadas", "Visitas"]
    body = [dict(zip(titles, row)) for row in cells[1:]]
    assert len(body) == 3 and body[-1]["Día"] == "Total"       # two days and the totals
    for row, expected in zip(body, json_rows):
        assert row["Día"] == expected["day"]
        assert row["Gestiones"] == expected["activities"] == row["Llamadas"] + row["Visitas"] \
            + row["Notas"]
        assert Decimal(str(row["Monto prometido"])) == Decimal(expected["promised_amount"])
        assert Decimal(str(row["Tasa de contacto"])).quantize(Decimal("0.0001")) == \
            Decimal(expected["contact_rate"])
    assert (body[0]["Gestiones"], body[0]["Contactos"], body[0]["Recuperado"]) == (13, 6, 300)
    assert (body[2]["Gestiones"], body[2]["Contactos"]) == (18, 7)
    money = next(c for c in sheet[header + 1] if c.column == titles.index("Recuperado") + 1)
    assert money.number_format == "#,##0.00"


def test_csv_and_pdf_exports(clients):
    path = f"/api/v1/reports/productivity?{FEB}&institution_id=1&agent_id={A1}&group_by=agent"
    response = clients["cliente"].get(path + "&format=csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"   # one charset
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert lines[0][:2] == ["Gestor", "Gestiones"]
    assert lines[1][:2] == [f"#{A1}", "18"] and lines[-1][0] == "Total"
    pdf = clients["cliente"].get(path + "&format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["Content-Type"] == "application/pdf"


@pytest.mark.parametrize("query,field", [
    ("date_from=2024-03-01&date_to=2024-02-01", "date_to"),       # ends before it starts
    ("date_from=2022-01-01&date_to=2024-02-01", "date_to"),       # over the maximum
    ("date_from=2024-02-30", "date_from"),                        # not a date
    (f"{FEB}&colour=red", "colour"),                              # unknown filter
    (f"{FEB}&stage=current", "stage"),                            # not this report's filter
    (f"{FEB}&group_by=planet", "group_by"),                       # unknown group
    (f"{FEB}&team_id=987654", "team_id"),                         # a team nobody knows
    (f"{FEB}&agent_id=abc", "agent_id"),
    (f"{FEB}&format=docx", "format"),
])
def test_bad_input_names_the_field(clients, query, field):
    response = clients["supervisor"].get(f"/api/v1/reports/productivity?{query}")
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


def test_unknown_values_of_other_reports_name_the_field(clients):
    supervisor = clients["supervisor"]
    aging = supervisor.get("/api/v1/reports/aging?stage=perdida")
    assert aging.status_code == 422 and "stage" in aging.json()["error"]["fields"]
    aging = supervisor.get("/api/v1/reports/aging?institution_id=1&status_id=999999")
    assert aging.status_code == 422 and "status_id" in aging.json()["error"]["fields"]
    recovery = supervisor.get(f"/api/v1/reports/recovery?{FEB}&queue_id=999999")
    assert recovery.status_code == 422 and "queue_id" in recovery.json()["error"]["fields"]


@pytest.mark.parametrize("who", ["cliente", "partner"])
def test_a_creditor_sees_only_its_institution(clients, who):
    client = clients[who]
    mine = client.get(f"/api/v1/reports/productivity?{FEB}&group_by=institution").json()
    assert [r["institution_id"] for r in mine["rows"]] == [1]
    everyone = clients["admin"].get(
        f"/api/v1/reports/productivity?{FEB}&group_by=institution").json()
    assert {1, 2} <= {r["institution_id"] for r in everyone["rows"]}
    for key in ("productivity", "recovery", "promises", "disputes", "champion-challenger",
                "roll-rates"):
        refused = client.get(f"/api/v1/reports/{key}?{FEB}&institution_id=2")
        assert refused.status_code == 404, (key, refused.text)
        assert refused.json()["error"]["code"] == "not_found"
    for path in ("/api/v1/reports/aging?institution_id=2",
                 f"/api/v1/reports/productivity?{FEB}&institution_id=2&format=xlsx",
                 "/api/v1/dashboards/institution?institution_id=2",
                 "/api/v1/dashboards/supervisor?institution_id=2"):
        assert client.get(path).status_code == 404, path
    # the overview counts institution 1's activities only: what an administrator's report
    # of institution 1 over the same days counts
    overview = client.get("/api/v1/dashboards/institution").json()
    window = f"date_from={overview['date_from']}&date_to={overview['date_to']}"
    theirs = clients["admin"].get(f"/api/v1/reports/productivity?{window}&institution_id=1")
    assert theirs.status_code == 200, theirs.text
    assert (overview["productivity"]["totals"]["activities"]
            == theirs.json()["totals"]["activities"]), (overview["productivity"], theirs.json())
    assert client.get("/api/v1/institutions").json()[0]["id"] == 1


def test_the_aging_of_the_demo_portfolio_after_a_snapshot(clients, stack):
    """The daily snapshot taken now (the RPC the timer's job is): the creditor's aging adds
    up to its accounts as the portfolio lists them."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from recaudo_common.identity import Identity, sign

    admin = sign(Identity(user_id=1, username="admin", profile="Administrador",
                          permissions=frozenset({"*"}), institutions=None))
    with ClusterRpcProxy(settings().nameko, context_data={"identity": admin}, timeout=60) as rpc:
        assert rpc.portfolio.snapshot_aging()["accounts"] > 0
    aging = clients["cliente"].get("/api/v1/reports/aging?group_by=institution").json()
    assert {r["institution_id"] for r in aging["rows"]} == {1}
    listed = clients["cliente"].get("/api/v1/accounts?per_page=1").json()
    assert aging["totals"]["accounts"] == listed["total"]
    assert sum(r["accounts"] for r in aging["rows"]) == listed["total"]


def test_a_scheduled_report_runs_now_and_its_file_downloads(clients):
    """Through the running stack: schedule, run now, download the run's file, cancel. The
    messaging service mails it through institution 1's demo mailbox to the local SMTP sink."""
    supervisor = clients["supervisor"]
    created = supervisor.session.post(supervisor.base_url + "/api/v1/report-schedules", json={
        "report": "productivity", "institution_id": 1, "frequency": "weekly", "weekday": 0,
        "hour": 7, "format": "xlsx", "recipients": [f"reportes-{RUN}@recaudo.example"],
        "filters": {"group_by": ["agent"]}}, timeout=60)
    assert created.status_code == 201, created.text
    schedule = created.json()
    try:
        run = supervisor.session.post(
            f"{supervisor.base_url}/api/v1/report-schedules/{schedule['id']}/run",
            timeout=60).json()
        assert run["state"] == "sent", run   # institution 1's demo mailbox, the local sink
        assert run["filename"].startswith("reporte-productividad-")
        file = supervisor.get(f"/api/v1/report-runs/{run['id']}/file")
        assert file.status_code == 200
        assert load_workbook(io.BytesIO(file.content)).active["A1"].value == "Productividad"
        # someone else's schedule and file: like missing
        assert clients["cliente"].get(f"/api/v1/report-runs/{run['id']}/file").status_code == 404
        listed = supervisor.get("/api/v1/report-schedules").json()
        assert [s["last_run"]["id"] for s in listed if s["id"] == schedule["id"]] == [run["id"]]
    finally:
        supervisor.session.delete(
            f"{supervisor.base_url}/api/v1/report-schedules/{schedule['id']}", timeout=60)
