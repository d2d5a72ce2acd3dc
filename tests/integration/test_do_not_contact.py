"""Do-not-contact managed through the real PortfolioService (issue 18, item 4): phones,
e-mails and addresses marked and lifted with a reason, kept in the debtor's history, obeyed
by the contact policy, and learnt by the queues service's projection (accounts_changed)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from portfolio.service import PortfolioService
from queues.service import QueuesService
from recaudo_common.contact_policy import verdict_for
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import scalar, sql, wait_for

INST, OTHER = 7301, 7302
BASE = 730_100_000
DEBTOR, SECOND, OUTSIDE = BASE + 1, BASE + 2, BASE + 3
PHONES = {"main": BASE + 11, "work": BASE + 12, "second": BASE + 13}
EMAIL, ADDRESS, SECOND_ADDRESS = BASE + 21, BASE + 31, BASE + 32


def identity(user_id, username, permissions, institutions=(INST,)):
    return Identity(user_id=user_id, username=username, profile="Prueba",
                    permissions=frozenset(permissions), institutions=institutions)


SUPERVISOR = identity(61, "supervisora", {"portfolio.read", "portfolio.read_all",
                                          "portfolio.write"})
COLLECTOR = identity(62, "gestor", {"portfolio.read", "portfolio.read_all", "activities.log"})
VIEWER = identity(63, "cliente", {"portfolio.read", "portfolio.read_all"})


def _remove(conn):
    conn.execute(text("DELETE FROM queues.account_facts WHERE account_id BETWEEN :lo AND :hi"),
                 {"lo": BASE, "hi": BASE + 99})
    for inst in (INST, OTHER):
        conn.execute(text("DELETE FROM portfolio.accounts WHERE institution_id = :i"), {"i": inst})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE institution_id = :i"), {"i": inst})
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id = :i"), {"i": inst})


@pytest.fixture
def debtors(engine):
    """A debtor with two phones, an e-mail and an address; a second debtor of the same
    institution; one of another institution."""
    with engine.begin() as conn:
        _remove(conn)
        for inst in (INST, OTHER):
            conn.execute(text("INSERT INTO portfolio.institutions (id, code, name) "
                              "VALUES (:i, :c, 'No contactar')"), {"i": inst, "c": f"NC{inst}"})
        for debtor, inst in ((DEBTOR, INST), (SECOND, INST), (OUTSIDE, OTHER)):
            conn.execute(text("INSERT INTO portfolio.debtors (id, institution_id, customer_number, "
                              "name) VALUES (:d, :i, :c, 'PÉREZ LUNA ANA')"),
                         {"d": debtor, "i": inst, "c": f"NC-{debtor}"})
            conn.execute(text("INSERT INTO portfolio.accounts (id, institution_id, debtor_id, "
                              "account_number, balance) VALUES (:d, :i, :d, :n, 500)"),
                         {"d": debtor, "i": inst, "n": f"NC-{debtor}"})
        conn.execute(text("INSERT INTO portfolio.phones (id, debtor_id, number, priority) VALUES "
                          "(:a, :d, '5511112222', 1), (:b, :d, '5533334444', 2), "
                          "(:c, :s, '5555556666', 1)"),
                     {"a": PHONES["main"], "b": PHONES["work"], "c": PHONES["second"],
                      "d": DEBTOR, "s": SECOND})
        conn.execute(text("INSERT INTO portfolio.emails (id, debtor_id, address) "
                          "VALUES (:e, :d, 'ana.perez@correo.mx')"), {"e": EMAIL, "d": DEBTOR})
        conn.execute(text("INSERT INTO portfolio.addresses (id, debtor_id, street, neighborhood, "
                          "state, postal_code) VALUES (:a, :d, 'Av. Juárez 10', 'Centro', "
                          "'Puebla', '72000'), (:b, :s, 'Calle 5 de Mayo 3', NULL, NULL, NULL)"),
                     {"a": ADDRESS, "b": SECOND_ADDRESS, "d": DEBTOR, "s": SECOND})
    yield
    with engine.begin() as conn:
        _remove(conn)


@pytest.fixture
def portfolio(debtors, container_factory, rabbit_config, rpc_proxy):
    container_factory(PortfolioService, rabbit_config).start()
    container_factory(QueuesService, rabbit_config).start()

    def as_(who):
        return rpc_proxy({"identity": sign(who)}).portfolio
    return as_


def mark(channel, contact_id, flag=True, reason="El deudor lo pidió por teléfono"):
    return {"channel": channel, "contact_id": contact_id, "do_not_contact": flag,
            "reason": reason}


def test_a_phone_marked_with_a_reason_is_kept_in_the_history_and_obeyed(portfolio):
    supervisor = portfolio(SUPERVISOR)
    change = supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["main"]))
    assert change["channel"] == "phone" and change["contact"] == "5511112222"
    assert change["do_not_contact"] is True and change["changed_by"] == 61
    assert change["changed_by_name"] == "supervisora" and change["changed_at"]

    view = supervisor.get_debtor(DEBTOR)
    phones = {p["id"]: p["do_not_call"] for p in view["phones"]}
    assert phones == {PHONES["main"]: True, PHONES["work"]: False}
    assert [(h["contact"], h["reason"]) for h in view["do_not_contact_history"]] == \
        [("5511112222", "El deudor lo pidió por teléfono")]
    contact = supervisor.get_contact_view(DEBTOR)
    assert verdict_for(contact, "call", "55 1111 2222").cause == "do_not_contact"
    assert verdict_for(contact, "call", "5533334444").cause != "do_not_contact"


def test_an_address_marked_refuses_letters_to_it(portfolio):
    supervisor = portfolio(SUPERVISOR)
    assert verdict_for(supervisor.get_contact_view(DEBTOR), "letter", ADDRESS).allowed
    change = supervisor.set_do_not_contact(DEBTOR, mark("address", ADDRESS, reason="Mudanza"))
    assert change["contact"] == "Av. Juárez 10, Centro, Puebla, 72000"
    contact = supervisor.get_contact_view(DEBTOR)
    assert [a["do_not_contact"] for a in contact["addresses"]] == [True]
    verdict = verdict_for(contact, "letter", ADDRESS)
    assert not verdict.allowed and verdict.cause == "do_not_contact"


def test_a_collector_records_a_request_and_only_an_editor_lifts_it(portfolio):
    collector, supervisor = portfolio(COLLECTOR), portfolio(SUPERVISOR)
    collector.set_do_not_contact(DEBTOR, mark("email", EMAIL))
    with pytest.raises(PermissionDenied):
        collector.set_do_not_contact(DEBTOR, mark("email", EMAIL, False, "Se equivocó"))
    with pytest.raises(PermissionDenied):
        portfolio(VIEWER).set_do_not_contact(DEBTOR, mark("phone", PHONES["work"]))
    supervisor.set_do_not_contact(DEBTOR, mark("email", EMAIL, False, "Aclaró que sí"))
    history = supervisor.get_debtor(DEBTOR)["do_not_contact_history"]
    assert [(h["do_not_contact"], h["changed_by_name"], h["reason"]) for h in history] == [
        (False, "supervisora", "Aclaró que sí"),
        (True, "gestor", "El deudor lo pidió por teléfono")]
    assert not supervisor.get_debtor(DEBTOR)["emails"][0]["do_not_contact"]


def test_bad_requests_name_their_field_and_out_of_scope_is_missing(portfolio, engine):
    supervisor = portfolio(SUPERVISOR)
    with pytest.raises(InvalidInput) as blank:
        supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["main"], reason="   "))
    assert "reason" in blank.value.fields
    with pytest.raises(InvalidInput) as channel:
        supervisor.set_do_not_contact(DEBTOR, {**mark("phone", 1), "channel": "fax"})
    assert "channel" in channel.value.fields
    # another debtor's phone, a debtor of another institution: as if missing
    with pytest.raises(NotFound) as foreign:
        supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["second"]))
    assert "contact_id" in foreign.value.fields
    with pytest.raises(NotFound):
        supervisor.set_do_not_contact(OUTSIDE, mark("phone", PHONES["main"]))
    with pytest.raises(NotFound):
        supervisor.set_do_not_contact(BASE + 99, mark("phone", PHONES["main"]))
    supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["main"]))
    with pytest.raises(Conflict) as again:
        supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["main"]))
    assert "do_not_contact" in again.value.fields
    assert scalar(engine, "SELECT count(*) FROM portfolio.do_not_contact_changes "
                          "WHERE debtor_id = :d", d=DEBTOR) == 1


def test_the_queues_learn_a_debtor_with_no_phone_left_to_call(portfolio, engine):
    supervisor = portfolio(SUPERVISOR)

    def projected():
        rows = sql(engine, "SELECT do_not_contact FROM queues.account_facts "
                           "WHERE account_id = :a", a=DEBTOR)
        return rows[0][0] if rows else None

    supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["main"]))
    assert wait_for(lambda: projected() is False)     # another phone may still be called
    supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["work"]))
    assert wait_for(lambda: projected() is True)
    supervisor.set_do_not_contact(DEBTOR, mark("phone", PHONES["work"], False, "Lo autorizó"))
    assert wait_for(lambda: projected() is False)
