"""Bulk imports end to end: the real PortfolioService in a nameko container on the real
broker, the real test database and a real S3 server (s3rver): layouts, presigned upload,
start, the import_requested event, the streaming COPY, validation report, chunked merge
and the events each chunk announces."""
from __future__ import annotations

import io
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from functools import partial

import openpyxl
import pytest
import requests
from nameko.events import event_handler
from sqlalchemy import text

from portfolio import aging, import_read, import_run, import_sql, imports
from portfolio.models import Base
from portfolio.seed import DEMO_DIR, DEMO_LAYOUTS
from portfolio.service import PortfolioService
from recaudo_common.contracts import schema_for
from recaudo_common.db import Database
from recaudo_common.errors import InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign
from recaudo_common.localtime import today_in   # the institutions' day (Mexico City's)
from recaudo_common.service import ServiceBase

from . import helpers

A, B = 7101, 7102   # two institutions of this module (cleaned before each test)
CHUNK = 5           # small chunks, so a dozen rows make several transactions and events

ADMIN_A = Identity(user_id=41, username="import-admin", profile="Administrador",
                   permissions=frozenset({"portfolio.import", "portfolio.read",
                                          "portfolio.read_all", "institutions.manage"}),
                   institutions=(A,))

# --- the events the import announces --------------------------------------------------------

SEEN: list[tuple[str, dict]] = []
_seen_lock = threading.Lock()


class EventProbe(ServiceBase):
    name = "import_probe"
    db = Database(Base, relay=False)

    def _keep(self, kind, payload):
        with _seen_lock:
            SEEN.append((kind, payload))

    @event_handler("portfolio", "accounts_changed")
    def accounts_changed(self, payload):
        self._keep("accounts_changed", payload)

    @event_handler("portfolio", "payment_received")
    def payment_received(self, payload):
        self._keep("payment_received", payload)

    @event_handler("portfolio", "stage_changed")
    def stage_changed(self, payload):
        self._keep("stage_changed", payload)

    @event_handler("portfolio", "import_progressed")
    def import_progressed(self, payload):
        self._keep("import_progressed", payload)

    @event_handler("portfolio", "import_finished")
    def import_finished(self, payload):
        self._keep("import_finished", payload)


def events(kind, institution=A, job_id=None):
    with _seen_lock:
        found = [p for k, p in SEEN if k == kind]
    if kind == "accounts_changed":
        return [p for p in found if p["accounts"]
                and p["accounts"][0]["institution_id"] == institution]
    return [p for p in found if p.get("institution_id") == institution
            and (job_id is None or p.get("job_id") == job_id)]


#: imports take longer than an event's trip: this suite waits up to 30 s
wait_for = partial(helpers.wait_for, seconds=30.0)


# --- fixtures ------------------------------------------------------------------------------------

def _empty(conn, *, drop=False) -> None:
    """Nothing of institutions A and B left (and, with ``drop``, not the institutions)."""
    for inst in (A, B):
        for table in ("import_jobs", "import_layouts", "accounts", "debtors", "statuses",
                      *(("institutions",) if drop else ())):
            key = "id" if table == "institutions" else "institution_id"
            conn.execute(text(f"DELETE FROM portfolio.{table} WHERE {key} = :i"), {"i": inst})


@pytest.fixture(scope="module", autouse=True)
def _remove_institutions(engine):
    """Other suites list every institution: A and B go when this module ends."""
    yield
    with engine.begin() as conn:
        _empty(conn, drop=True)


@pytest.fixture
def institutions(engine):
    """Institutions A and B with nothing in them, a status catalogue for A."""
    with engine.begin() as conn:
        for inst in (A, B):
            conn.execute(text("INSERT INTO portfolio.institutions (id, code, name) "
                              "VALUES (:i, :c, :n) ON CONFLICT (id) DO NOTHING"),
                         {"i": inst, "c": f"IMP{inst}", "n": f"Importadora {inst}"})
        _empty(conn)
        conn.execute(text("INSERT INTO portfolio.statuses (institution_id, code, name) VALUES "
                          "(:i, 'ACTIVO', 'Activo'), (:i, 'CONVENIO', 'En convenio')"), {"i": A})
    with _seen_lock:
        SEEN.clear()


@pytest.fixture
def portfolio(s3_server, institutions, container_factory, rabbit_config, rpc_proxy,
              monkeypatch):
    monkeypatch.setattr(import_read, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(import_run, "PROGRESS_SECONDS", 0.0)
    container_factory(EventProbe, rabbit_config).start()
    container_factory(PortfolioService, rabbit_config).start()
    return rpc_proxy({"identity": sign(ADMIN_A)}, timeout=30).portfolio


PORTFOLIO_COLUMNS = {
    "customer_number": "Cliente", "name": "Nombre", "kind": "Tipo", "tax_id": "RFC",
    "account_number": "Cuenta", "product": "Producto", "balance": "Saldo",
    "overdue_amount": "Vencido", "stage": "Etapa", "status": "Estatus",
    "opened_on": "Apertura", "phone1": "Tel 1", "phone2": "Tel 2", "email": "Correo",
    "street": "Calle", "state": "Estado", "postal_code": "CP",
    "instalment_count": "Plazo", "instalment_amount": "Cuota",
    "first_due_date": "Primer vencimiento", "instalments_paid": "Pagadas",
}
HEADER = list(PORTFOLIO_COLUMNS.values())


def save_layout(portfolio, **changes):
    data = {"institution_id": A, "name": "Cartera prueba", "kind": "portfolio",
            "columns": PORTFOLIO_COLUMNS, "required": ["phone1"], **changes}
    return portfolio.save_layout(data)


def add_months(day: date, months: int) -> date:
    """PostgreSQL's date + interval 'n month' (the day clamped to the month's end)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


FIRST_DUE = add_months(today_in(None), -5)


def row(n, customer=None, **over):
    values = {
        "Cliente": customer or f"C{n:03d}", "Nombre": f"Deudor Número {n}", "Tipo": "persona",
        "RFC": f"xaxx01010{n:03d}", "Cuenta": f"A-{n:04d}", "Producto": "Tarjeta",
        "Saldo": f"{n}2345.67", "Vencido": "1000.10", "Etapa": "al corriente",
        "Estatus": "activo", "Apertura": "2020-01-31", "Tel 1": f"(55) 1234-{n:04d}",
        "Tel 2": f"+52 33 1111 {n:04d}", "Correo": f"Cliente.{n}@Ejemplo.MX",
        "Calle": f"Av. Juárez {n}", "Estado": "Sonora", "CP": "83000",
        "Plazo": "12", "Cuota": "1000.00", "Primer vencimiento": FIRST_DUE.isoformat(),
        "Pagadas": "2"}
    values.update(over)
    return [values[h] for h in HEADER]


def csv_bytes(rows, header=HEADER, delimiter=",", encoding="utf-8") -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def upload(portfolio, layout_id, content: bytes, file_name="cartera.csv", declared=None):
    created = portfolio.create_import({"layout_id": layout_id, "file_name": file_name,
                                       "size_bytes": len(content) if declared is None
                                       else declared})
    response = requests.put(created["upload_url"], data=content, timeout=30)
    assert response.status_code == 200, response.text
    return created["job"]


def run_import(portfolio, layout_id, content: bytes, file_name="cartera.csv", seconds=60):
    job = upload(portfolio, layout_id, content, file_name)
    started = portfolio.start_import(job["id"])
    assert started["state"] == "queued"
    assert wait_for(lambda: portfolio.get_import(job["id"])["state"] in ("done", "failed"),
                    seconds=seconds), portfolio.get_import(job["id"])
    return portfolio.get_import(job["id"])


def scalar(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows_of(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).mappings().all()


def problems(portfolio, job_id):
    return [(p["row_number"], p["column"], p["problem"])
            for p in portfolio.import_problems(job_id, 1, 200)["items"]]


# --- layouts ---------------------------------------------------------------------------------------

def test_layouts_are_validated_against_the_catalogue_and_scoped(portfolio, rpc_proxy):
    layout = save_layout(portfolio)
    assert layout["required"] == sorted({"phone1", "customer_number", "name",
                                         "account_number", "balance"})
    assert portfolio.get_layout(layout["id"])["columns"]["tax_id"] == "RFC"
    assert [x["id"] for x in portfolio.list_layouts(A)] == [layout["id"]]

    bad = [({"columns": {**PORTFOLIO_COLUMNS, "shoe_size": "Talla"}}, "columns"),
           ({"columns": {"name": "Nombre"}}, "columns"),                 # mandatory missing
           ({"encoding": "utf-16"}, "encoding"),
           ({"delimiter": "::"}, "delimiter"),
           ({"date_format": "%d %B %Y"}, "date_format"),
           ({"required": ["guarantor_name"]}, "required"),               # not mapped
           ({"decimal_separator": ",", "thousands_separator": ","}, "thousands_separator"),
           ({"columns": {**PORTFOLIO_COLUMNS, "product": "nombre "}}, "columns"),  # same header
           ({"columns": {k: v for k, v in PORTFOLIO_COLUMNS.items() if k != "first_due_date"}},
            "columns")]                                                  # half a schedule
    for change, field in bad:
        with pytest.raises(InvalidInput) as err:
            save_layout(portfolio, name="Otro", **change)
        assert field in err.value.fields, (change, err.value.fields)

    # another institution's layout answers like a missing one
    other = rpc_proxy({"identity": sign(Identity(
        user_id=1, username="root", profile="Administrador",
        permissions=frozenset({"portfolio.import", "institutions.manage"}),
        institutions=None))}).portfolio
    theirs = other.save_layout({"institution_id": B, "name": "De B", "kind": "payments",
                                "columns": {"account_number": "Cuenta", "amount": "Monto",
                                            "value_date": "Fecha", "reference": "Ref"}})
    for call in (lambda: portfolio.get_layout(theirs["id"]),
                 lambda: portfolio.list_layouts(B),
                 lambda: portfolio.create_import({"layout_id": theirs["id"],
                                                  "file_name": "p.csv", "size_bytes": 10}),
                 lambda: portfolio.save_layout({"institution_id": B, "name": "x",
                                                "kind": "payments",
                                                "columns": {"account_number": "C",
                                                            "amount": "M", "value_date": "F",
                                                            "reference": "R"}})):
        with pytest.raises(NotFound):
            call()

    # layouts are an administrator's catalogue: importing does not let one edit them
    importer = rpc_proxy({"identity": sign(Identity(
        user_id=42, username="importer", profile="Supervisor",
        permissions=frozenset({"portfolio.import"}), institutions=(A,)))}).portfolio
    assert importer.list_layouts(A)
    with pytest.raises(PermissionDenied):
        importer.save_layout({"institution_id": A, "name": "Mío", "kind": "payments",
                              "columns": {"account_number": "C", "amount": "M",
                                          "value_date": "F", "reference": "R"}})


# --- a good portfolio file ------------------------------------------------------------------------

def test_portfolio_file_round_trip_and_reimport(portfolio, engine):
    layout = save_layout(portfolio)
    # C001 has a second account far away in the file (another chunk): merged last
    data = [row(n) for n in range(1, 12)] + [row(12, customer="C001", Nombre="Deudor Uno")]
    job = run_import(portfolio, layout["id"], csv_bytes(data))
    assert job["state"] == "done", job
    assert (job["total_rows"], job["imported_rows"], job["rejected_rows"]) == (12, 12, 0)
    assert job["processed_rows"] == 12
    assert problems(portfolio, job["id"]) == []

    assert scalar(engine, "SELECT count(*) FROM portfolio.debtors WHERE institution_id = :i",
                  i=A) == 11
    accounts = {r["account_number"]: r for r in rows_of(engine, """
        SELECT a.*, d.customer_number, d.name, d.tax_id, s.code AS status_code
        FROM portfolio.accounts a JOIN portfolio.debtors d ON d.id = a.debtor_id
        LEFT JOIN portfolio.statuses s ON s.id = a.status_id WHERE a.institution_id = :i""",
                                                              i=A)}
    assert len(accounts) == 12
    first = accounts["A-0001"]
    assert first["balance"] == Decimal("12345.67") and isinstance(first["balance"], Decimal)
    assert first["overdue_amount"] == Decimal("3000.00")  # 3 instalments due and unpaid
    assert first["status_code"] == "ACTIVO" and first["tax_id"] == "XAXX01010012"  # last row wins
    assert first["opened_on"] == date(2020, 1, 31)
    assert accounts["A-0012"]["debtor_id"] == first["debtor_id"]
    assert first["name"] == "Deudor Uno"  # the file's last row of a customer wins
    # the schedule: 12 monthly instalments, the first 2 paid; the 3rd is the oldest unpaid
    due3 = add_months(FIRST_DUE, 2)
    assert first["days_past_due"] == (today_in(None) - due3).days
    assert first["stage"] == "delinquent"  # aging overrides "al corriente"
    schedule = rows_of(engine, "SELECT number, due_date, amount, paid_amount FROM "
                               "portfolio.instalments WHERE account_id = :a ORDER BY number",
                       a=first["id"])
    assert [s["due_date"] for s in schedule] == [add_months(FIRST_DUE, k) for k in range(12)]
    assert [s["paid_amount"] for s in schedule[:3]] == [Decimal("1000.00")] * 2 + [Decimal(0)]
    contacts = rows_of(engine, """
        SELECT (SELECT array_agg(number ORDER BY priority) FROM portfolio.phones
                WHERE debtor_id = :d) AS phones,
               (SELECT array_agg(address) FROM portfolio.emails WHERE debtor_id = :d) AS emails,
               (SELECT array_agg(time_zone) FROM portfolio.addresses WHERE debtor_id = :d) AS tz
    """, d=first["debtor_id"])[0]
    assert {"5512340001", "3311110001", "5512340012"} <= set(contacts["phones"])
    assert "cliente.1@ejemplo.mx" in contacts["emails"]
    assert contacts["tz"][0] == "America/Hermosillo"  # Sonora's clock, for contact hours

    # events: one accounts_changed per chunk (3 row ranges of 5 + the deferred customer)
    assert wait_for(lambda: events("import_finished", job_id=job["id"]))
    assert wait_for(lambda: len({a["account_id"] for e in events("accounts_changed")
                                 for a in e["accounts"]}) == 12)
    batches = events("accounts_changed")
    assert len(batches) == 4 and all(len(b["accounts"]) <= CHUNK for b in batches)
    facts = {a["account_id"]: a for b in batches for a in b["accounts"]}
    assert facts[first["id"]]["balance"] == "12345.67"
    assert facts[first["id"]]["time_zone"] == "America/Hermosillo"
    progressed = events("import_progressed", job_id=job["id"])
    assert progressed[-1]["processed_rows"] == 12 and progressed[-1]["total_rows"] == 12
    assert events("import_finished", job_id=job["id"])[0]["state"] == "done"

    # re-import: updates, never duplicates; stage moves are announced
    with _seen_lock:
        SEEN.clear()
    again = [row(n) for n in range(1, 12)] + [row(12, customer="C001", Nombre="Deudor Uno")]
    again[4] = row(5, Saldo="99.50", Etapa="litigio")
    job2 = run_import(portfolio, layout["id"], csv_bytes(again))
    assert job2["state"] == "done" and job2["imported_rows"] == 12, job2
    assert scalar(engine, "SELECT count(*) FROM portfolio.accounts WHERE institution_id = :i",
                  i=A) == 12
    assert scalar(engine, "SELECT count(*) FROM portfolio.debtors WHERE institution_id = :i",
                  i=A) == 11
    assert scalar(engine, "SELECT count(*) FROM portfolio.phones p JOIN portfolio.debtors d "
                          "ON d.id = p.debtor_id WHERE d.institution_id = :i", i=A) == 24
    assert scalar(engine, "SELECT count(*) FROM portfolio.instalments i JOIN portfolio.accounts a "
                          "ON a.id = i.account_id WHERE a.institution_id = :i", i=A) == 144
    assert scalar(engine, "SELECT count(*) FROM portfolio.addresses x JOIN portfolio.debtors d "
                          "ON d.id = x.debtor_id WHERE d.institution_id = :i", i=A) == 12
    fifth = rows_of(engine, "SELECT id, balance, stage FROM portfolio.accounts "
                            "WHERE institution_id = :i AND account_number = 'A-0005'", i=A)[0]
    assert (fifth["balance"], fifth["stage"]) == (Decimal("99.50"), "litigation")
    assert wait_for(lambda: [(e["account_id"], e["old_stage"], e["new_stage"])
                             for e in events("stage_changed")]
                    == [(fifth["id"], "delinquent", "litigation")])
    assert [j["id"] for j in portfolio.list_imports({"institution_id": A})["items"]] == \
        [job2["id"], job["id"]]


# --- payments ----------------------------------------------------------------------------------------

def test_payments_file_creates_movements_once(portfolio, engine):
    layout = save_layout(portfolio)
    run_import(portfolio, layout["id"], csv_bytes([row(n) for n in range(1, 4)]))
    payments = portfolio.save_layout({
        "institution_id": A, "name": "Pagos", "kind": "payments",
        "date_format": "%d/%m/%Y", "decimal_separator": ",", "thousands_separator": ".",
        "delimiter": ";",
        "columns": {"account_number": "CUENTA", "amount": "IMPORTE", "value_date": "FECHA",
                    "reference": "REFERENCIA"}})
    yesterday = (today_in(None) - timedelta(days=1)).strftime("%d/%m/%Y")
    lines = [["A-0001", "1.500,25", yesterday, "R-1"],     # pays #3 and half of #4
             ["A-0001", "100,00", yesterday, "R-2"],
             ["A-0002", "2.000,00", yesterday, "R-1"],     # pays #3 and #4
             ["A-0002", "10,00", yesterday, "R-1"],        # same reference again: duplicate
             ["A-9999", "10,00", yesterday, "R-9"],        # no such account
             ["A-0003", "-5,00", yesterday, "R-5"],
             ["A-0003", "7,00", "31/02/2024", "R-6"]]
    content = csv_bytes(lines, header=["CUENTA", "IMPORTE", "FECHA", "REFERENCIA"],
                        delimiter=";", encoding="latin-1")
    job = run_import(portfolio, payments["id"], content, file_name="pagos.csv")
    assert job["state"] == "done", job
    assert (job["imported_rows"], job["rejected_rows"]) == (3, 4)
    assert problems(portfolio, job["id"]) == [
        (5, "CUENTA", "Duplicado de la fila 4"),
        (6, "CUENTA", "Cuenta inexistente en esta institución"),
        (7, "IMPORTE", "El monto no puede ser negativo"),
        (8, "FECHA", "Fecha inválida (formato DD/MM/AAAA)")]

    balances = {r["account_number"]: r for r in rows_of(
        engine, "SELECT id, account_number, balance FROM portfolio.accounts "
                "WHERE institution_id = :i", i=A)}
    assert balances["A-0001"]["balance"] == Decimal("12345.67") - Decimal("1600.25")
    assert balances["A-0002"]["balance"] == Decimal("22345.67") - Decimal("2000.00")
    paid = [r["paid_amount"] for r in rows_of(
        engine, "SELECT paid_amount FROM portfolio.instalments WHERE account_id = :a "
                "ORDER BY number", a=balances["A-0001"]["id"])]
    assert paid[:5] == [Decimal("1000.00")] * 3 + [Decimal("600.25"), Decimal(0)]
    assert scalar(engine, "SELECT count(*) FROM portfolio.movements m JOIN portfolio.accounts a "
                          "ON a.id = m.account_id WHERE a.institution_id = :i", i=A) == 3
    assert wait_for(lambda: len(events("payment_received")) == 3)
    received = sorted((e["reference"], e["amount"]) for e in events("payment_received"))
    assert received == [("R-1", "1500.25"), ("R-1", "2000.00"), ("R-2", "100.00")]

    # the same file again: nothing new, balances untouched
    job2 = run_import(portfolio, payments["id"], content, file_name="pagos.csv")
    assert job2["state"] == "done" and "0 pagos nuevos" in job2["message"], job2
    assert scalar(engine, "SELECT count(*) FROM portfolio.movements m JOIN portfolio.accounts a "
                          "ON a.id = m.account_id WHERE a.institution_id = :i", i=A) == 3
    assert scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a",
                  a=balances["A-0001"]["id"]) == Decimal("12345.67") - Decimal("1600.25")
    time.sleep(1)
    assert len(events("payment_received")) == 3


# --- bad input ----------------------------------------------------------------------------------------

def test_bad_rows_are_reported_and_the_good_ones_imported(portfolio, engine):
    layout = save_layout(portfolio)
    data = [row(1),
            row(2, Apertura="2020-02-30"),                  # no such day
            row(3, Saldo="12,34.5x"),                       # not a number
            row(4, Saldo="-10.00"),                         # negative balance
            row(5, Estatus="INEXISTENTE"),
            row(6, Etapa="feliz"),
            row(7, **{"Tel 1": ""}),                        # required by the layout
            row(8, Nombre=""),                              # mandatory
            row(9, Cuenta="A-0001"),                        # duplicate of row 2
            row(10, Correo="sin-arroba"),
            row(11, Pagadas="13"),                          # more than the 12 instalments
            row(12, Cuota="", Plazo="12"),                  # half a schedule
            row(13)]
    job = run_import(portfolio, layout["id"], csv_bytes(data))
    assert job["state"] == "done", job
    assert (job["imported_rows"], job["rejected_rows"]) == (2, 11)
    assert set(problems(portfolio, job["id"])) == {
        (3, "Apertura", "Fecha inválida (formato AAAA-MM-DD)"),
        (4, "Saldo", "Monto inválido (formato 1234.56)"),
        (5, "Saldo", "El monto no puede ser negativo"),
        (6, "Estatus", "Estatus desconocido en esta institución"),
        (7, "Etapa", "Etapa inválida (al corriente, moroso o litigio)"),
        (8, "Tel 1", "Obligatorio"),
        (9, "Nombre", "Obligatorio"),
        (10, "Cuenta", "Duplicado de la fila 2"),
        (11, "Correo", "Correo electrónico inválido"),
        (12, "Pagadas", "Mayor que el número de cuotas"),
        (13, "Cuota", "Obligatorio cuando hay plan de pagos")}
    assert sorted(scalar(engine, "SELECT array_agg(account_number) FROM portfolio.accounts "
                                 "WHERE institution_id = :i", i=A)) == ["A-0001", "A-0013"]
    report = portfolio.import_report_csv(job["id"]).splitlines()
    assert report[0] == "fila,columna,problema"
    assert "3,Apertura,Fecha inválida (formato AAAA-MM-DD)" in report
    assert len(report) == 12


def test_wrong_encoding_fails_whole_and_keeps_earlier_data(portfolio, engine):
    layout = save_layout(portfolio)
    assert run_import(portfolio, layout["id"], csv_bytes([row(1)]))["state"] == "done"
    latin = csv_bytes([row(n, Nombre="Núñez Peña") for n in range(2, 9)], encoding="latin-1")
    job = run_import(portfolio, layout["id"], latin)
    assert job["state"] == "failed"
    assert "codificación utf-8" in job["message"] and "fila 2" in job["message"], job
    assert scalar(engine, "SELECT count(*) FROM portfolio.accounts WHERE institution_id = :i",
                  i=A) == 1
    assert scalar(engine, "SELECT count(*) FROM pg_tables WHERE schemaname = 'portfolio_import' "
                          "AND tablename LIKE :t", t=f"%\\_{job['id']}") == 0  # dropped
    assert wait_for(lambda: events("import_finished", job_id=job["id"]))
    assert events("import_finished", job_id=job["id"])[0]["state"] == "failed"


def test_missing_required_columns_fail_naming_them(portfolio, engine):
    layout = save_layout(portfolio)
    header = [h for h in HEADER if h not in ("Saldo", "Tel 1")]
    data = [[v for h, v in zip(HEADER, row(1)) if h in header]]
    job = run_import(portfolio, layout["id"], csv_bytes(data, header=header))
    assert job["state"] == "failed"
    assert "«Saldo»" in job["message"] and "«Tel 1»" in job["message"], job
    assert scalar(engine, "SELECT count(*) FROM portfolio.accounts WHERE institution_id = :i",
                  i=A) == 0


def test_malformed_csv_fails_naming_the_row(portfolio, engine):
    layout = save_layout(portfolio)
    good = csv_bytes([row(1), row(2)])
    bad = good + b"C003,sobran,columnas" + b",x" * 30 + b"\r\n"
    job = run_import(portfolio, layout["id"], bad)
    assert job["state"] == "failed"
    assert "fila 4" in job["message"] and "más columnas" in job["message"], job
    assert scalar(engine, "SELECT count(*) FROM portfolio.accounts WHERE institution_id = :i",
                  i=A) == 0


def test_uploads_are_checked(portfolio, monkeypatch):
    layout = save_layout(portfolio)
    for name, size, field in [("cartera.csv", 0, "size_bytes"),
                              ("../../etc/passwd.csv", 10, "file_name"),
                              ("cartera\n.csv", 10, "file_name"),
                              ("cartera.xlsx", 10, "file_name")]:
        with pytest.raises(InvalidInput) as err:
            portfolio.create_import({"layout_id": layout["id"], "file_name": name,
                                     "size_bytes": size})
        assert field in err.value.fields
    monkeypatch.setattr(imports, "MAX_IMPORT_BYTES", 500 * 1024 * 1024)
    with pytest.raises(InvalidInput) as err:   # a 500 MB + 1 byte declaration
        portfolio.create_import({"layout_id": layout["id"], "file_name": "grande.csv",
                                 "size_bytes": 500 * 1024 * 1024 + 1})
    assert "500 MiB" in err.value.message

    # started before the upload, or with another size than declared
    created = portfolio.create_import({"layout_id": layout["id"], "file_name": "c.csv",
                                       "size_bytes": 100})
    assert created["job"]["state"] == "queued"
    assert "imports/%d/" % A in created["upload_url"] and "c.csv" not in created["upload_url"]
    with pytest.raises(InvalidInput):
        portfolio.start_import(created["job"]["id"])
    job = upload(portfolio, layout["id"], b"Cliente,Nombre\r\n", declared=100)
    with pytest.raises(InvalidInput) as err:
        portfolio.start_import(job["id"])
    assert "100" in err.value.message

    # only the header: a clear failure
    header_only = run_import(portfolio, layout["id"], csv_bytes([]))
    assert header_only["state"] == "failed" and "no tiene filas" in header_only["message"]


def test_a_failing_chunk_rolls_back_alone(portfolio, engine, monkeypatch):
    """A chunk whose transaction fails leaves nothing of itself; the others are kept and
    its rows are in the report."""
    layout = save_layout(portfolio)
    original = aging.refresh

    def refresh(session, today, account_ids=None, **kw):
        numbers = session.execute(text("SELECT account_number FROM portfolio.accounts "
                                       "WHERE id = ANY(:ids)"), {"ids": account_ids}).scalars()
        if "A-0007" in set(numbers):
            raise RuntimeError("el disco se llenó")
        return original(session, today, account_ids=account_ids, **kw)

    monkeypatch.setattr(aging, "refresh", refresh)
    job = run_import(portfolio, layout["id"], csv_bytes([row(n) for n in range(1, 13)]))
    assert job["state"] == "failed", job
    assert "5 filas no se guardaron" in job["message"], job
    numbers = scalar(engine, "SELECT array_agg(account_number ORDER BY account_number) FROM "
                             "portfolio.accounts WHERE institution_id = :i", i=A)
    assert numbers == [f"A-{n:04d}" for n in (1, 2, 3, 4, 5, 11, 12)]  # rows 7-11 are chunk 2
    assert [p[0] for p in problems(portfolio, job["id"])] == [7, 8, 9, 10, 11]
    assert (job["imported_rows"], job["rejected_rows"], job["processed_rows"]) == (7, 5, 12)


# --- XLSX ------------------------------------------------------------------------------------------

def test_xlsx_file(portfolio, engine):
    layout = save_layout(portfolio, name="Cartera XLSX", file_format="xlsx",
                         date_format="%d/%m/%Y")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for n in range(1, 8):
        values = dict(zip(HEADER, row(n)))
        values.update({"Saldo": 1234.5 + n, "Vencido": 0, "Apertura": date(2021, 3, n),
                       "Primer vencimiento": FIRST_DUE, "Plazo": 12, "Cuota": 1000,
                       "Pagadas": 2, "Tel 1": 5512340000 + n, "CP": 83000})
        sheet.append([values[h] for h in HEADER])
    sheet.append([None] * len(HEADER))       # an empty row is skipped, numbering kept
    sheet.append(row(9, Apertura="2021-03-09",  # text in the wrong date format
                     **{"Primer vencimiento": FIRST_DUE.strftime("%d/%m/%Y")}))
    buffer = io.BytesIO()
    book.save(buffer)
    job = run_import(portfolio, layout["id"], buffer.getvalue(), file_name="cartera.xlsx")
    assert job["state"] == "done", job
    assert (job["imported_rows"], job["rejected_rows"]) == (7, 1)
    assert problems(portfolio, job["id"]) == [(10, "Apertura",
                                               "Fecha inválida (formato DD/MM/AAAA)")]
    third = rows_of(engine, "SELECT a.balance, a.opened_on, (SELECT number FROM portfolio.phones "
                            "p WHERE p.debtor_id = a.debtor_id AND priority = 1) AS phone "
                            "FROM portfolio.accounts a WHERE institution_id = :i "
                            "AND account_number = 'A-0003'", i=A)[0]
    assert third["balance"] == Decimal("1237.50")
    assert third["opened_on"] == date(2021, 3, 3)
    assert third["phone"] == "5512340003"


# --- the SQL the import generates --------------------------------------------------------------

DATE_CASES = {
    "%d/%m/%Y": {"31/12/2024": date(2024, 12, 31), "1/2/2024": date(2024, 2, 1),
                 "29/02/2024": date(2024, 2, 29), "29/02/2023": None, "31/04/2024": None,
                 "00/01/2024": None, "12/13/2024": None, "2024-12-31": None, "1/2/24": None,
                 "31/12/2024 10:00": None, "aa/bb/cccc": None, "": None},
    "%Y-%m-%d": {"2024-01-31": date(2024, 1, 31), "2024-1-5": date(2024, 1, 5),
                 "2024/01/31": None, "1899-12-31": None, "24-01-31": None},
    "%m/%d/%Y": {"12/31/2024": date(2024, 12, 31), "31/12/2024": None},
    "%d/%m/%y": {"31/12/24": date(2024, 12, 31), "01/01/70": date(1970, 1, 1),
                 "01/01/2024": None},
    "%Y%m%d": {"20240229": date(2024, 2, 29), "20230229": None, "2024022": None},
    "%d.%m.%Y": {"31.12.2024": date(2024, 12, 31), "31-12-2024": None},
}


def test_date_formats_translate_to_strict_sql(engine):
    with engine.connect() as conn:
        for fmt, cases in DATE_CASES.items():
            for value, expected in cases.items():
                got = conn.execute(text(
                    "SELECT " + import_sql.date_expr("NULLIF(btrim(CAST(:v AS text)), '')", fmt)),
                    {"v": value}).scalar()
                assert got == expected, (fmt, value, got)


AMOUNT_CASES = [
    # (text, decimal, thousands, positive, expected)
    ("1234.56", ".", "", False, Decimal("1234.56")),
    ("1,234.56", ".", ",", False, Decimal("1234.56")),
    ("$ 1,234.5", ".", ",", False, Decimal("1234.50")),
    ("1.234,56", ",", ".", False, Decimal("1234.56")),
    ("1 234,56", ",", " ", False, Decimal("1234.56")),
    ("0", ".", "", False, Decimal("0")),
    ("0", ".", "", True, None),
    ("-1.00", ".", "", False, None),
    ("1.234", ".", "", False, None),           # three decimals
    ("1.2.3", ".", "", False, None),
    ("1,234.56", ",", ".", False, None),        # the other convention
    ("999999999999.99", ".", "", False, Decimal("999999999999.99")),
    ("1000000000000", ".", "", False, None),    # 13 integer digits
    (".5", ".", "", False, Decimal("0.50")),
    ("5.", ".", "", False, Decimal("5")),
    ("-", ".", "", False, None),
    (".", ".", "", False, None),
    ("1e5", ".", "", False, None),
    ("12 34", ".", "", False, None),
]


def test_amounts_translate_to_exact_numeric(engine):
    with engine.connect() as conn:
        for value, dec, thousands, positive, expected in AMOUNT_CASES:
            normal = import_sql.amount_text_expr("CAST(:v AS text)", dec, thousands)
            got = conn.execute(text(
                f"SELECT {import_sql.amount_expr('n', positive)} FROM (SELECT {normal} AS n) x"),
                {"v": value}).scalar()
            assert got == expected, (value, dec, thousands, got)
            assert got is None or isinstance(got, Decimal)


def test_sql_built_events_match_their_contracts(portfolio, engine):
    """The bulk events are built by PostgreSQL; they must be exactly what the contract
    schema dumps (and load back through it, as consumers do)."""
    layout = save_layout(portfolio)
    run_import(portfolio, layout["id"], csv_bytes([row(n) for n in range(1, 4)]))
    with engine.connect() as conn:
        payloads = conn.execute(text(
            "SELECT event_type, payload FROM portfolio.outbox WHERE event_type IN "
            "('accounts_changed', 'stage_changed', 'payment_received') "
            "AND payload::text LIKE :inst ORDER BY id DESC LIMIT 20"),
            {"inst": f'%"institution_id": {A}%'}).all()
    assert payloads
    for event_type, payload in payloads:
        schema = schema_for("portfolio", event_type)
        assert schema.dump(schema.load(payload)) == payload


# --- the demo files, and a restart after a crash ------------------------------------------------------

def test_demo_files_import_cleanly(portfolio, engine):
    for _, name, file_name, values in DEMO_LAYOUTS:
        layout = portfolio.save_layout({**values, "institution_id": A, "name": name})
        content = (DEMO_DIR / file_name).read_bytes()
        job = run_import(portfolio, layout["id"], content, file_name=file_name)
        assert job["state"] == "done", (file_name, job)
        assert job["rejected_rows"] == 0, (file_name, problems(portfolio, job["id"]))
        assert job["imported_rows"] >= 20, (file_name, job)
    payments_files = sum(v["kind"] == "payments" for _, _, _, v in DEMO_LAYOUTS)
    assert scalar(engine, "SELECT count(*) FROM portfolio.movements m JOIN portfolio.accounts a "
                          "ON a.id = m.account_id WHERE a.institution_id = :i", i=A) \
        == 20 * payments_files
    credimas = rows_of(engine, "SELECT balance, stage FROM portfolio.accounts "
                               "WHERE institution_id = :i AND account_number = 'CRED-88007'", i=A)
    assert credimas[0]["balance"] == Decimal("151564.66")  # 151.564,66 in the Latin-1 file


def test_the_demo_seed_writes_payments_every_demo_payments_layout_imports(portfolio, engine):
    """``recaudo seed-live`` keeps promises by importing payments through each demo
    institution's payments layout, in the layout's own format (Latin-1 with decimal commas,
    XLSX...): each such file imports every row, with its amounts and dates."""
    from activities.seed import _payments_file

    layouts = [(n, v) for _, n, _, v in DEMO_LAYOUTS if v["kind"] == "payments"]
    assert len(layouts) == 3
    layout = save_layout(portfolio)
    run_import(portfolio, layout["id"], csv_bytes([row(n) for n in range(1, 4)]))
    numbers = [r["account_number"] for r in rows_of(
        engine, "SELECT account_number FROM portfolio.accounts WHERE institution_id = :i "
                "ORDER BY account_number", i=A)]
    day = today_in(None) - timedelta(days=3)
    for k, (name, values) in enumerate(layouts):
        saved = portfolio.save_layout({**values, "institution_id": A, "name": name})
        rows = [(number, Decimal("1234.56") + n + k, day - timedelta(days=n), f"DEMO-{k}-{n}")
                for n, number in enumerate(numbers)]
        content = _payments_file(saved, rows)
        job = run_import(portfolio, saved["id"], content,
                         file_name=f"pagos_demo.{values['file_format']}")
        assert (job["state"], job["rejected_rows"]) == ("done", 0), \
            (name, problems(portfolio, job["id"]))
        got = rows_of(engine, "SELECT a.account_number, m.amount, m.value_date, m.reference "
                              "FROM portfolio.movements m JOIN portfolio.accounts a ON "
                              "a.id = m.account_id WHERE m.reference LIKE :r ORDER BY m.reference",
                      r=f"DEMO-{k}-%")
        assert [tuple(g.values()) for g in got] == rows, name


def test_a_job_found_running_restarts_from_scratch(portfolio, engine):
    """After a crash the broker redelivers import_requested and the job, still "running",
    runs again: upserts and unique movements make the second pass harmless."""
    layout = save_layout(portfolio)
    content = csv_bytes([row(n) for n in range(1, 8)])
    job = upload(portfolio, layout["id"], content)
    with engine.begin() as conn:  # as if a first attempt had died half-way
        conn.execute(text("UPDATE portfolio.import_jobs SET state = 'running', "
                          "processed_rows = 3, imported_rows = 3 WHERE id = :j"), {"j": job["id"]})
        conn.execute(text("INSERT INTO portfolio.import_problems (job_id, row_number, \"column\", "
                          "problem) VALUES (:j, 2, 'x', 'de la vez anterior')"), {"j": job["id"]})
    assert import_run.run_job(Database.outside(Base, engine, "portfolio"), job["id"]) == "done"
    again = portfolio.get_import(job["id"])
    assert (again["state"], again["imported_rows"], again["processed_rows"]) == ("done", 7, 7)
    assert problems(portfolio, job["id"]) == []
    assert import_run.run_job(Database.outside(Base, engine, "portfolio"), job["id"]) is None  # done: skipped
    assert scalar(engine, "SELECT count(*) FROM portfolio.accounts WHERE institution_id = :i",
                  i=A) == 7


# --- do-not-contact columns ---------------------------------------------------------------------

FLAG_COLUMNS = {"phone1_do_not_call": "No llamar 1", "phone2_do_not_call": "No llamar 2",
                "email_do_not_contact": "No correo", "address_do_not_contact": "No visitar"}


def test_do_not_contact_columns_mark_contacts_and_keep_their_history(portfolio, engine):
    """Issue 18: optional sí/no columns mark phones, e-mails and addresses; a blank leaves
    the mark as it is, "no" lifts it, a bad value is reported; each change is in the
    history under the import's file, and the accounts' facts carry it to the queues."""
    layout = save_layout(portfolio, columns={**PORTFOLIO_COLUMNS, **FLAG_COLUMNS})
    header = HEADER + list(FLAG_COLUMNS.values())

    def flagged(n, *flags, **over):
        return row(n, **over) + list(flags)

    first = run_import(portfolio, layout["id"], csv_bytes([
        flagged(1, "sí", "", "X", "no"),
        flagged(2, "", "", "", ""),
        flagged(3, "quizá", "", "", ""),
    ], header=header), file_name="marcas.csv")
    assert (first["imported_rows"], first["rejected_rows"]) == (2, 1), first
    assert problems(portfolio, first["id"]) == [(4, "No llamar 1", "Valor inválido (sí o no)")]

    def marks(customer):
        return rows_of(engine, """
            SELECT (SELECT array_agg(p.do_not_call ORDER BY p.priority) FROM portfolio.phones p
                    WHERE p.debtor_id = d.id) AS phones,
                   (SELECT bool_or(e.do_not_contact) FROM portfolio.emails e
                    WHERE e.debtor_id = d.id) AS email,
                   (SELECT bool_or(x.do_not_contact) FROM portfolio.addresses x
                    WHERE x.debtor_id = d.id) AS address, d.id
            FROM portfolio.debtors d WHERE d.institution_id = :i AND d.customer_number = :c""",
                       i=A, c=customer)[0]

    one = marks("C001")
    assert (one["phones"], one["email"], one["address"]) == ([True, False], True, False)
    two = marks("C002")
    assert (two["phones"], two["email"], two["address"]) == ([False, False], False, False)
    history = rows_of(engine, "SELECT channel, contact, do_not_contact, reason, changed_by, "
                              "changed_by_name FROM portfolio.do_not_contact_changes "
                              "WHERE debtor_id = :d ORDER BY id", d=one["id"])
    assert [(h["channel"], h["contact"], h["do_not_contact"]) for h in history] == [
        ("phone", "5512340001", True), ("email", "cliente.1@ejemplo.mx", True)]
    assert {(h["reason"], h["changed_by"], h["changed_by_name"]) for h in history} == \
        {("Archivo marcas.csv", ADMIN_A.user_id, f"Importación #{first['id']}")}
    facts = [f for p in events("accounts_changed") for f in p["accounts"]
             if f["debtor_id"] == one["id"]]
    assert facts and facts[-1]["do_not_contact"] is False    # phone 2 may still be called

    # again: blanks keep the marks, "no" lifts one, the second phone marked too
    second = run_import(portfolio, layout["id"], csv_bytes([
        flagged(1, "", "si", "no", "si")], header=header), file_name="marcas2.csv")
    assert second["state"] == "done", second
    one = marks("C001")
    assert (one["phones"], one["email"], one["address"]) == ([True, True], False, True)
    assert scalar(engine, "SELECT count(*) FROM portfolio.do_not_contact_changes "
                          "WHERE debtor_id = :d", d=one["id"]) == 5
    assert wait_for(lambda: [f for p in events("accounts_changed") for f in p["accounts"]
                             if f["debtor_id"] == one["id"]][-1]["do_not_contact"] is True)


def test_a_do_not_contact_column_needs_its_contact(portfolio):
    columns = {k: v for k, v in PORTFOLIO_COLUMNS.items() if k != "email"}
    with pytest.raises(InvalidInput) as refused:
        save_layout(portfolio, columns={**columns, "email_do_not_contact": "No correo"})
    assert any("email_do_not_contact" in str(p) for p in refused.value.fields["columns"])
