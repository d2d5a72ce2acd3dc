"""Payment references (issue 25): per account, unguessable, check-digit validated, given by
``portfolio.payment_instructions`` to whoever may read the account, and recognised when a
payments file reports the payment under the reference instead of the account number."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from portfolio import imports, payment_refs
from portfolio.service import PortfolioService
from recaudo_common.errors import InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import scalar, sql, wait_for

A, B = 7201, 7202
ADMIN = Identity(user_id=51, username="ref-admin", profile="Administrador",
                 permissions=frozenset({"portfolio.read", "portfolio.read_all",
                                        "portfolio.import", "institutions.manage"}),
                 institutions=(A,))
COLLECTOR = Identity(user_id=52, username="ref-gestor", profile="Gestor",
                     permissions=frozenset({"portfolio.read"}), institutions=(A,))
OTHER = Identity(user_id=53, username="ref-other", profile="Administrador",
                 permissions=ADMIN.permissions, institutions=(B,))
CLABE = "002180700000000011"   # bank 002, plaza 180, check digit 1


def _clean(conn, drop=False):
    for inst in (A, B):
        for table in ("payment_settings", "payment_references", "import_jobs", "import_layouts",
                      "accounts", "debtors", *(("institutions",) if drop else ())):
            key = "id" if table == "institutions" else "institution_id"
            conn.execute(text(f"DELETE FROM portfolio.{table} WHERE {key} = :i"), {"i": inst})


@pytest.fixture(scope="module", autouse=True)
def _drop_institutions(engine):
    yield
    with engine.begin() as conn:
        _clean(conn, drop=True)


@pytest.fixture
def accounts(engine):
    """Two accounts of A (one assigned to COLLECTOR) and one of B."""
    with engine.begin() as conn:
        for inst in (A, B):
            conn.execute(text("INSERT INTO portfolio.institutions (id, code, name) VALUES "
                              "(:i, :c, :n) ON CONFLICT (id) DO NOTHING"),
                         {"i": inst, "c": f"REF{inst}", "n": f"Referencias {inst}"})
        _clean(conn)
        ids = {}
        for inst, number, agent in ((A, "R-1", 52), (A, "R-2", None), (B, "R-3", None)):
            debtor = conn.execute(text(
                "INSERT INTO portfolio.debtors (institution_id, customer_number, name) "
                "VALUES (:i, :c, 'PRUEBA REFERENCIA') RETURNING id"),
                {"i": inst, "c": f"C-{number}"}).scalar()
            ids[number] = conn.execute(text(
                "INSERT INTO portfolio.accounts (institution_id, debtor_id, account_number, "
                "balance, overdue_amount, assigned_agent_id) VALUES (:i, :d, :n, 5000, 1200, :a) "
                "RETURNING id"), {"i": inst, "d": debtor, "n": number, "a": agent}).scalar()
    return ids


@pytest.fixture
def portfolio(s3_server, accounts, container_factory, rabbit_config, rpc_proxy):
    container_factory(PortfolioService, rabbit_config).start()
    return lambda who: rpc_proxy({"identity": sign(who)}, timeout=30).portfolio


def test_check_digits_and_clabe():
    ref = payment_refs.derive(1, 42)
    assert len(ref) == 16 and ref.isdigit() and payment_refs.is_valid(ref)
    assert ref != payment_refs.derive(1, 43) and ref != payment_refs.derive(2, 42)
    typo = ref[:3] + str((int(ref[3]) + 1) % 10) + ref[4:]
    assert not payment_refs.is_valid(typo)
    swapped = next(ref[:i] + ref[i + 1] + ref[i] + ref[i + 2:] for i in range(15)
                   if ref[i] != ref[i + 1])
    assert not payment_refs.is_valid(swapped)
    assert payment_refs.is_valid_clabe(CLABE)
    assert not payment_refs.is_valid_clabe(CLABE[:-1] + "0")


def test_instructions_scope_and_settings(portfolio, accounts, engine):
    admin, collector, other = portfolio(ADMIN), portfolio(COLLECTOR), portfolio(OTHER)
    with pytest.raises(InvalidInput) as bad:
        admin.save_payment_settings(A, {"clabe": "002180700000000012"})
    assert "clabe" in bad.value.fields
    with pytest.raises(PermissionDenied):
        collector.save_payment_settings(A, {"clabe": CLABE})
    with pytest.raises(NotFound):
        other.save_payment_settings(A, {"clabe": CLABE})
    saved = admin.save_payment_settings(A, {"clabe": CLABE, "bank_name": "BBVA",
                                            "beneficiary": "Cobranza SA", "convenio": "1234567"})
    assert saved["clabe"] == CLABE

    first = collector.payment_instructions(accounts["R-1"])
    assert first == {
        "account_id": accounts["R-1"], "account_number": "R-1", "institution_id": A,
        "reference": first["reference"], "clabe": CLABE, "bank_name": "BBVA",
        "beneficiary": "Cobranza SA", "convenio": "1234567",
        "spei_concept": first["reference"], "amount_due": "1200.00", "balance": "5000.00",
        "currency": "MXN"}
    assert payment_refs.is_valid(first["reference"])
    assert admin.payment_instructions(accounts["R-1"])["reference"] == first["reference"]
    # out of scope answers like missing: another collector's account, another institution's
    with pytest.raises(NotFound):
        collector.payment_instructions(accounts["R-2"])
    with pytest.raises(NotFound):
        other.payment_instructions(accounts["R-1"])
    with pytest.raises(NotFound):
        admin.payment_instructions(accounts["R-3"])
    assert other.payment_instructions(accounts["R-3"])["clabe"] is None
    assert scalar(engine, "SELECT count(*) FROM portfolio.payment_references "
                          "WHERE institution_id = :i", i=A) == 1


def test_a_payments_file_recognises_the_reference(portfolio, accounts, engine):
    admin = portfolio(ADMIN)
    reference = admin.payment_instructions(accounts["R-2"])["reference"]
    layout = admin.save_layout({
        "institution_id": A, "name": "Pagos banco", "kind": "payments",
        "columns": {"account_number": "REFERENCIA", "amount": "IMPORTE",
                    "value_date": "FECHA", "reference": "FOLIO"}})
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    content = (f"REFERENCIA,IMPORTE,FECHA,FOLIO\n{reference},300.00,{yesterday},F-1\n"
               f"{reference[:-1]}{(int(reference[-1]) + 1) % 10},10.00,{yesterday},F-2\n").encode()
    created = admin.create_import({"layout_id": layout["id"], "file_name": "banco.csv",
                                   "size_bytes": len(content)})
    import requests
    requests.put(created["upload_url"], data=content, timeout=10).raise_for_status()
    admin.start_import(created["job"]["id"])
    assert wait_for(lambda: admin.get_import(created["job"]["id"])["state"] in ("done", "failed"),
                    60)
    job = admin.get_import(created["job"]["id"])
    assert (job["imported_rows"], job["rejected_rows"]) == (1, 1), job
    assert scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a",
                  a=accounts["R-2"]) == Decimal("4700.00")
