"""Payments posted by providers (issue 25, item 3): signed, fresh, once per payment id,
credited as a payments file credits (movement, balance, instalments, ``payment_received``
through the outbox), unknown references in the triage list, providers as data with their
secret never shown back."""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
from nameko.events import event_handler
from sqlalchemy import text

from portfolio.models import Base
from portfolio.payment_webhooks import signature
from portfolio.service import PortfolioService
from recaudo_common.db import Database
from recaudo_common.errors import (Conflict, InvalidInput, NotAuthenticated, NotFound,
                                   PermissionDenied)
from recaudo_common.identity import Identity, sign
from recaudo_common.service import ServiceBase

from .helpers import scalar, sql, wait_for

A, B = 7301, 7302
SECRET = "s" * 40
ADMIN = Identity(user_id=61, username="wh-admin", profile="Administrador",
                 permissions=frozenset({"portfolio.read", "portfolio.read_all", "portfolio.write",
                                        "portfolio.import", "institutions.manage"}),
                 institutions=(A,))
SUPERVISOR_B = Identity(user_id=62, username="wh-sup-b", profile="Supervisor",
                        permissions=frozenset({"portfolio.read", "portfolio.read_all",
                                               "portfolio.write"}), institutions=(B,))
COLLECTOR = Identity(user_id=63, username="wh-gestor", profile="Gestor",
                     permissions=frozenset({"portfolio.read"}), institutions=(A,))

SEEN: list[dict] = []
_lock = threading.Lock()


class PaymentProbe(ServiceBase):
    name = "payment_probe"
    db = Database(Base, relay=False)

    @event_handler("portfolio", "payment_received")
    def payment_received(self, payload):
        with _lock:
            SEEN.append(payload)


def received(account_id):
    with _lock:
        return [p for p in SEEN if p["account_id"] == account_id]


def _clean(conn, drop=False):
    for inst in (A, B):
        conn.execute(text("DELETE FROM portfolio.payment_notifications WHERE institution_id = :i"),
                     {"i": inst})
        for table in ("payment_providers", "payment_references", "accounts", "debtors",
                      *(("institutions",) if drop else ())):
            key = "id" if table == "institutions" else "institution_id"
            conn.execute(text(f"DELETE FROM portfolio.{table} WHERE {key} = :i"), {"i": inst})


@pytest.fixture(scope="module", autouse=True)
def _drop_institutions(engine):
    yield
    with engine.begin() as conn:
        _clean(conn, drop=True)


@pytest.fixture
def account(engine):
    """An account of A owing 3 instalments of 1000 (two overdue)."""
    with engine.begin() as conn:
        for inst in (A, B):
            conn.execute(text("INSERT INTO portfolio.institutions (id, code, name) VALUES "
                              "(:i, :c, :n) ON CONFLICT (id) DO NOTHING"),
                         {"i": inst, "c": f"WH{inst}", "n": f"Webhooks {inst}"})
        _clean(conn)
        debtor = conn.execute(text(
            "INSERT INTO portfolio.debtors (institution_id, customer_number, name) "
            "VALUES (:i, 'C-1', 'PAGADOR') RETURNING id"), {"i": A}).scalar()
        account_id = conn.execute(text(
            "INSERT INTO portfolio.accounts (institution_id, debtor_id, account_number, balance, "
            "overdue_amount, days_past_due, stage) VALUES (:i, :d, 'W-1', 3000, 2000, 40, "
            "'delinquent') RETURNING id"), {"i": A, "d": debtor}).scalar()
        conn.execute(text(
            "INSERT INTO portfolio.instalments (account_id, number, due_date, amount) VALUES "
            "(:a, 1, current_date - 40, 1000), (:a, 2, current_date - 10, 1000), "
            "(:a, 3, current_date + 20, 1000)"), {"a": account_id})
    with _lock:
        SEEN.clear()
    return account_id


@pytest.fixture
def portfolio(account, container_factory, rabbit_config, rpc_proxy):
    container_factory(PaymentProbe, rabbit_config).start()
    container_factory(PortfolioService, rabbit_config).start()
    proxies = {}

    def as_(who=None):
        key = who.username if who else None
        if key not in proxies:
            proxies[key] = rpc_proxy({"identity": sign(who)} if who else {}, timeout=30).portfolio
        return proxies[key]
    return as_


@pytest.fixture
def provider(portfolio):
    return portfolio(ADMIN).save_payment_provider({"name": "banco-a", "institution_id": A,
                                                   "secret": SECRET})


def post(portfolio, payload, *, secret=SECRET, age=0, name="banco-a", body=None):
    body = body if body is not None else json.dumps(payload)
    stamp = str(int(time.time()) - age)
    return portfolio().receive_payment_webhook(name, body, stamp, signature(secret, stamp, body))


def payment(reference, payment_id="P-1", amount="1500.00", **more):
    return {"payment_id": payment_id, "reference": reference, "amount": amount,
            "paid_at": "2026-12-07T15:00:00Z", **more}


def test_providers_are_data_and_their_secret_is_never_shown(portfolio, provider, engine):
    assert provider["has_secret"] is True and "secret" not in provider
    assert portfolio(ADMIN).list_payment_providers() == [provider]
    stored = scalar(engine, "SELECT secret_sealed FROM portfolio.payment_providers WHERE id = :p",
                    p=provider["id"])
    assert SECRET not in stored
    with pytest.raises(InvalidInput) as short:
        portfolio(ADMIN).save_payment_provider({"name": "x-y", "institution_id": A, "secret": "corto"})
    assert set(short.value.fields) == {"secret"}
    with pytest.raises(InvalidInput) as named:
        portfolio(ADMIN).save_payment_provider({"name": "Con Espacios", "institution_id": A,
                                                "secret": SECRET})
    assert "name" in named.value.fields
    with pytest.raises(Conflict):
        portfolio(ADMIN).save_payment_provider({"name": "banco-a", "institution_id": A,
                                                "secret": SECRET})
    with pytest.raises(PermissionDenied):
        portfolio(COLLECTOR).list_payment_providers()
    with pytest.raises(NotFound):   # another institution's administrator
        portfolio(Identity(user_id=64, username="wh-adm-b", profile="Administrador",
                           permissions=ADMIN.permissions, institutions=(B,))
                  ).save_payment_provider({"name": "banco-a", "institution_id": A,
                                           "active": False}, provider["id"])


def test_a_signed_payment_is_credited_once_like_a_file(portfolio, provider, account, engine):
    reference = portfolio(ADMIN).payment_instructions(account)["reference"]
    first = post(portfolio, payment(reference))
    assert first["status"] == "credited" and first["duplicate"] is False
    assert scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a",
                  a=account) == Decimal("1500.00")
    paid = [r[0] for r in sql(engine, "SELECT paid_amount FROM portfolio.instalments "
                                      "WHERE account_id = :a ORDER BY number", a=account)]
    assert paid == [Decimal("1000.00"), Decimal("500.00"), Decimal("0.00")]
    movement = sql(engine, "SELECT kind, amount, reference, value_date::text FROM "
                           "portfolio.movements WHERE account_id = :a", a=account)
    assert movement == [("payment", Decimal("1500.00"), "banco-a:P-1", "2026-12-07")]
    assert wait_for(lambda: len(received(account)) == 1)
    event = received(account)[0]
    assert (event["amount"], event["reference"], event["institution_id"]) == \
        ("1500.00", "banco-a:P-1", A)

    # the provider retries (a fresh signature, the same payment id): nothing credited twice
    again = post(portfolio, payment(reference))
    assert again == {"id": first["id"], "status": "credited", "duplicate": True}
    # the same id with another amount: a conflict naming the field
    with pytest.raises(Conflict) as clash:
        post(portfolio, payment(reference, amount="1.00"))
    assert "payment_id" in clash.value.fields
    assert scalar(engine, "SELECT count(*) FROM portfolio.movements WHERE account_id = :a",
                  a=account) == 1
    time.sleep(0.5)
    assert len(received(account)) == 1


def test_bad_signatures_and_old_timestamps_are_refused(portfolio, provider, account, engine):
    reference = portfolio(ADMIN).payment_instructions(account)["reference"]
    for attempt in (dict(secret="otro" * 10), dict(age=301), dict(age=-400),
                    dict(name="nadie"), dict(name="")):
        with pytest.raises(NotAuthenticated):
            post(portfolio, payment(reference, payment_id="P-bad"), **attempt)
    body = json.dumps(payment(reference, payment_id="P-bad"))
    stamp = str(int(time.time()))
    with pytest.raises(NotAuthenticated):   # the signature of another body
        portfolio().receive_payment_webhook("banco-a", body.replace("1500", "9500"), stamp,
                                            signature(SECRET, stamp, body))
    with pytest.raises(NotAuthenticated):
        portfolio().receive_payment_webhook("banco-a", body, "ayer", signature(SECRET, "ayer", body))
    with pytest.raises(NotAuthenticated):   # not even ASCII
        portfolio().receive_payment_webhook("banco-a", body, stamp, "v1=ñandú")
    assert post(portfolio, payment(reference, payment_id="P-ok"), age=290)["status"] == "credited"
    # an inactive provider is refused like an unknown one
    portfolio(ADMIN).save_payment_provider({"name": "banco-a", "institution_id": A,
                                            "active": False}, provider["id"])
    with pytest.raises(NotAuthenticated):
        post(portfolio, payment(reference, payment_id="P-late"))
    assert scalar(engine, "SELECT count(*) FROM portfolio.payment_notifications "
                          "WHERE institution_id = :i", i=A) == 1


def test_bad_bodies_name_the_field(portfolio, provider, account):
    reference = portfolio(ADMIN).payment_instructions(account)["reference"]
    for body, field in ((payment(reference, amount="-5.00"), "amount"),
                        (payment(reference, amount="0"), "amount"),
                        (payment(reference, amount="10.005"), "amount"),
                        (payment(reference, paid_at="ayer"), "paid_at"),
                        ({"reference": reference, "amount": "1.00",
                          "paid_at": "2026-12-07T15:00:00Z"}, "payment_id"),
                        (payment(reference, extra=1), "extra")):
        with pytest.raises(InvalidInput) as bad:
            post(portfolio, body)
        assert field in bad.value.fields, (body, bad.value.fields)
    with pytest.raises(InvalidInput):
        post(portfolio, None, body="no es json")


def test_unknown_references_wait_in_the_triage_list(portfolio, provider, account, engine):
    good = portfolio(ADMIN).payment_instructions(account)["reference"]
    typo = good[:-1] + str((int(good[-1]) + 1) % 10)
    answer = post(portfolio, payment(typo, payment_id="P-typo", amount="200.00"))
    assert answer["status"] == "unmatched"
    foreign = post(portfolio, payment(good, payment_id="P-usd", amount="10.00", currency="USD"))
    assert foreign["status"] == "unmatched"
    assert scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a",
                  a=account) == Decimal("3000.00")
    page = portfolio(ADMIN).payment_triage({})
    assert [i["payment_id"] for i in page["items"]] == ["P-usd", "P-typo"]
    assert page["items"][1]["note"] == "Referencia desconocida"
    # scope: another institution's supervisor sees none of it and cannot act on it
    assert portfolio(SUPERVISOR_B).payment_triage({})["total"] == 0
    with pytest.raises(NotFound):
        portfolio(SUPERVISOR_B).assign_triaged_payment(answer["id"], {"account_id": account})
    with pytest.raises(PermissionDenied):
        portfolio(COLLECTOR).payment_triage({})

    assigned = portfolio(ADMIN).assign_triaged_payment(answer["id"], {"account_id": account,
                                                                      "note": "Dígito mal"})
    assert (assigned["status"], assigned["account_id"]) == ("assigned", account)
    assert scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a",
                  a=account) == Decimal("2800.00")
    assert wait_for(lambda: len(received(account)) == 1)
    with pytest.raises(Conflict):
        portfolio(ADMIN).assign_triaged_payment(answer["id"], {"account_id": account})
    dismissed = portfolio(ADMIN).dismiss_triaged_payment(foreign["id"], {"note": "Devuelto"})
    assert dismissed["status"] == "dismissed"
    assert portfolio(ADMIN).payment_triage({})["total"] == 0
    with pytest.raises(InvalidInput):
        portfolio(ADMIN).dismiss_triaged_payment(foreign["id"], {})
