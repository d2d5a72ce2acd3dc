"""SMS end to end through a real Kannel (bearerbox + smsbox) and its fakesmsc test SMSC, with
the real portfolio and activities services, RabbitMQ and PostgreSQL.

A message sent from a template is queued, handed to Kannel's sendsms, reaches the fake
SMSC and comes back as a delivery report: ``delivered``. A reply from the debtor's phone
(in any form: +52...) is matched to the debtor and logged as an inbound SMS activity. A
"BAJA" withdraws SMS consent at once: the number is marked do-not-contact (with its
reason, in the portfolio's history) and the next send is refused by the contact policy.
"""
from __future__ import annotations

import pytest
from sqlalchemy import text

from activities.service import ActivitiesService
from messaging.service import MessagingService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput
from recaudo_common.identity import Identity, sign

from .helpers import scalar, sql, wait_for

INST = 8751
D1, D2 = 875_000_001, 875_000_002
GESTOR, ADMIN = 8761, 8799
SENDER = "30303"
TABLES = ("sms_messages", "sms_settings", "templates", "outbox", "processed_events")


def signed(user_id, permissions, institutions=(INST,), profile="Gestor"):
    return {"identity": sign(Identity(user_id=user_id, username=f"user{user_id}", profile=profile,
                                      permissions=frozenset(permissions),
                                      institutions=institutions))}


class QuietPortfolioService(PortfolioService):
    db = Database(PortfolioBase, relay=False)


@pytest.fixture(scope="module")
def portfolio_rows(migrated_database, engine):
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO portfolio.institutions (id, code, name, contact_from, contact_until)"
            " VALUES (:i, 'SMS' || :i, 'Banco SMS', '00:00', '23:59:59')"
            " ON CONFLICT (id) DO UPDATE SET contact_from = '00:00', contact_until = '23:59:59'"),
            {"i": INST})
        for debtor, phone in ((D1, "5512345678"), (D2, "5587654321")):
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name,"
                " time_zone) VALUES (:d, :i, 'C' || :d, 'DEUDOR ' || :d, 'America/Mexico_City')"),
                {"d": debtor, "i": INST})
            conn.execute(text("INSERT INTO portfolio.phones (debtor_id, number, kind)"
                              " VALUES (:d, :p, 'mobile')"), {"d": debtor, "p": phone})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, balance, overdue_amount, days_past_due, stage, assigned_agent_id)"
                " VALUES (:d, :i, :d, 'S' || :d, 'Tarjeta', 1500.50, 300, 20, 'delinquent', :g)"),
                {"d": debtor, "i": INST, "g": GESTOR})
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.accounts WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id = :i"), {"i": INST})


def _truncate(engine):
    sql(engine, "TRUNCATE " + ", ".join(f"messaging.{t}" for t in TABLES)
        + " RESTART IDENTITY CASCADE")
    sql(engine, "UPDATE portfolio.phones SET do_not_call = false WHERE debtor_id IN (:a, :b)",
        a=D1, b=D2)


@pytest.fixture
def services(portfolio_rows, kannel_server, engine, container_factory, rabbit_config):
    _truncate(engine)
    _SINCE[0] = scalar(engine, "SELECT coalesce(max(id), 0) FROM activities.activities")
    container_factory(QuietPortfolioService, rabbit_config).start()
    container_factory(ActivitiesService, rabbit_config).start()
    container = container_factory(MessagingService, rabbit_config)
    container.start()
    yield container
    _truncate(engine)


@pytest.fixture
def admin(services, rpc_proxy):
    return rpc_proxy(signed(ADMIN, {"*"}, None, "Administrador")).messaging


@pytest.fixture
def gestor(services, rpc_proxy):
    return rpc_proxy(signed(GESTOR, {"portfolio.read", "activities.read", "activities.log",
                                     "messaging.send"})).messaging


@pytest.fixture
def template(admin, kannel_server):
    admin.save_sms_settings(INST, {
        "gateway_url": kannel_server.sendsms_url, "username": kannel_server.username,
        "password": kannel_server.password, "inbound_token": kannel_server.token,
        "sender_id": SENDER})
    return admin.save_template({
        "institution_id": INST, "name": "SMS recordatorio", "subject_es": "Recordatorio",
        "text_es": "{{ debtor.name }}: su saldo es ${{ account.balance|money }}. Responda BAJA"
                   " para no recibir más SMS.",
        "subject_en": "Reminder", "text_en": "{{ debtor.name }}: your balance is "
                                             "${{ account.balance|money }}. Reply STOP to opt out."})


def _state(gestor, debtor, uuid):
    return next(m for m in gestor.list_sms(debtor) if m["uuid"] == uuid)["state"]


def activities_of(engine, account_id):
    """The account's activities logged by this test (earlier tests' stay: the log is kept)."""
    return [dict(r._mapping) for r in sql(
        engine, "SELECT * FROM activities.activities WHERE account_id = :a AND id > :since"
                " ORDER BY id", a=account_id, since=_SINCE[0])]


_SINCE = [0]


def test_a_sent_sms_reaches_the_network_and_its_delivery_report_marks_it_delivered(
        gestor, template, kannel_server, engine):
    preview = gestor.preview_sms({"account_id": D1, "template_id": template["id"]})
    assert preview["text"].startswith(f"DEUDOR {D1}: su saldo es $1,500.50")
    assert (preview["encoding"], preview["segments"]) == ("ucs2", 2)   # "más": á is not GSM-7
    assert preview["phones"] == ["5512345678"]
    sent = gestor.send_sms({"account_id": D1, "template_id": template["id"],
                            "phone": "(55) 1234-5678"})
    assert (sent["state"], sent["phone"], sent["direction"]) == ("queued", "5512345678",
                                                                 "outbound")
    assert wait_for(lambda: _state(gestor, D1, sent["uuid"]) == "delivered", 20), \
        gestor.list_sms(D1)
    line = next(r for r in kannel_server.received() if "5512345678" in r)
    assert line.startswith(f"<{SENDER} 5512345678 ")
    [logged] = activities_of(engine, D1)
    assert (logged["kind"], logged["direction"], logged["result_code"], logged["phone"]) == \
        ("sms", "outbound", "SMS_ENV", "5512345678")
    [message] = gestor.list_sms(D1)
    assert message["delivered_at"] and message["sent_at"] and message["activity_id"] == logged["id"]


def test_a_reply_is_matched_to_the_debtor_by_number_and_logged(gestor, template, kannel_server,
                                                                engine):
    kannel_server.inject("+525587654321", SENDER, "Pagaré el viernes ✓")
    assert wait_for(lambda: any(m["direction"] == "inbound" and m["activity_id"]
                                for m in gestor.list_sms(D2)), 20), gestor.list_sms(D2)
    [reply] = gestor.list_sms(D2)
    assert (reply["body"], reply["state"], reply["phone"]) == ("Pagaré el viernes ✓",
                                                              "received", "525587654321")
    [logged] = activities_of(engine, D2)
    assert (logged["kind"], logged["direction"], logged["result_code"]) == \
        ("sms", "inbound", "SMS_REC")
    assert "Pagaré el viernes" in logged["description"]
    assert gestor.list_sms(D1) == []


def test_baja_withdraws_sms_consent_at_once_and_the_next_send_is_refused(
        gestor, template, kannel_server, engine):
    first = gestor.send_sms({"account_id": D1, "template_id": template["id"],
                             "phone": "5512345678"})
    assert wait_for(lambda: _state(gestor, D1, first["uuid"]) == "delivered", 20)
    kannel_server.inject("5512345678", SENDER, "baja")
    assert wait_for(lambda: scalar(
        engine, "SELECT do_not_call FROM portfolio.phones WHERE debtor_id = :d", d=D1), 20)
    reason = scalar(engine, "SELECT reason FROM portfolio.do_not_contact_changes"
                            " WHERE debtor_id = :d ORDER BY id DESC LIMIT 1", d=D1)
    assert "baja" in reason.lower() and "SMS" in reason
    with pytest.raises(Conflict) as err:
        gestor.send_sms({"account_id": D1, "template_id": template["id"], "phone": "5512345678"})
    assert "compliance" in err.value.fields
    assert scalar(engine, "SELECT count(*) FROM messaging.sms_messages WHERE debtor_id = :d"
                          " AND direction = 'outbound'", d=D1) == 1
    # the reply's activity, whatever order the activities service logged the two in
    assert wait_for(lambda: any("Palabra de baja" in a["description"]
                                for a in activities_of(engine, D1)), 20)


def test_bad_input_names_the_field_and_sends_nothing(gestor, template, engine):
    with pytest.raises(InvalidInput) as err:
        gestor.send_sms({"account_id": D1, "template_id": template["id"], "phone": "5500000000"})
    assert err.value.fields == {"phone": ["No es un teléfono del deudor"]}
    with pytest.raises(InvalidInput) as err:
        gestor.send_sms({"account_id": D1, "template_id": template["id"]})
    assert "phone" in err.value.fields
    assert scalar(engine, "SELECT count(*) FROM messaging.sms_messages") == 0


def test_a_wrong_token_or_receiver_is_refused(services, kannel_server, template, gestor):
    import urllib.error
    import urllib.request

    from .conftest import SMS_CALLBACK_TEST_PORT

    base = f"http://127.0.0.1:{SMS_CALLBACK_TEST_PORT}/kannel/mo?from=5512345678&text=hola"
    for query in (f"&to={SENDER}&token=otro", f"&to=99999&token={kannel_server.token}"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + query, timeout=10)
        assert err.value.code == 403
    assert gestor.list_sms(D1) == []


# --- the debtor portal's personal link by SMS ---------------------------------------------------

TOKEN = "pl_" + "Tk9" * 14
LINK = f"https://recaudo.example/mi-cuenta/{INST}/{TOKEN}"


def test_a_portal_link_goes_by_sms_in_one_gsm7_segment_and_its_token_shows_nowhere(
        gestor, template, kannel_server, engine):
    sent = gestor.send_portal_link_sms({"account_id": D1, "phone": "55 1234 5678",
                                        "portal_link": LINK, "link_id": 41,
                                        "idempotency_key": "portal-link-41"})
    assert (sent["encoding"], sent["segments"], sent["template_id"]) == ("gsm7", 1, None)
    assert TOKEN not in sent["body"] and f"/mi-cuenta/{INST}/pl_***" in sent["body"]
    assert wait_for(lambda: _state(gestor, D1, sent["uuid"]) == "delivered", 20), \
        gestor.list_sms(D1)
    # the phone gets the usable link; the conversation, the history and the API do not
    assert any(TOKEN in line and "5512345678" in line for line in kannel_server.received())
    [shown] = gestor.list_sms(D1)
    assert TOKEN not in shown["body"] and shown["body"].startswith("Consulte su cuenta: ")
    [logged] = activities_of(engine, D1)
    assert (logged["kind"], logged["result_code"], logged["phone"]) == ("sms", "SMS_ENV",
                                                                       "5512345678")
    assert logged["details"]["portal"] == "link_sent" and logged["details"]["portal_link_id"] == 41
    assert logged["description"].startswith("Liga del portal enviada por SMS a 5512345678")
    assert TOKEN not in logged["description"]
    # a retry of the same link answers the first message
    again = gestor.send_portal_link_sms({"account_id": D1, "phone": "5512345678",
                                         "portal_link": LINK, "link_id": 41,
                                         "idempotency_key": "portal-link-41"})
    assert again["uuid"] == sent["uuid"]


def test_a_portal_link_by_sms_is_judged_by_the_contact_policy(gestor, template, engine):
    sql(engine, "UPDATE portfolio.phones SET do_not_call = true WHERE debtor_id = :d", d=D1)
    with pytest.raises(Conflict) as err:
        gestor.send_portal_link_sms({"account_id": D1, "phone": "5512345678",
                                     "portal_link": LINK, "link_id": 42, "language": "en"})
    assert {"compliance", "rule", "reason"} <= set(err.value.fields)
    with pytest.raises(InvalidInput) as err:
        gestor.send_portal_link_sms({"account_id": D2, "phone": "5512345678",
                                     "portal_link": LINK, "link_id": 42})
    assert err.value.fields == {"phone": ["No es un teléfono del deudor"]}
    with pytest.raises(InvalidInput) as err:
        gestor.send_portal_link_sms({"account_id": D2, "phone": "5587654321", "link_id": 42,
                                     "portal_link": "https://evil.example/x?pl_abc"})
    assert "portal_link" in err.value.fields
    assert scalar(engine, "SELECT count(*) FROM messaging.sms_messages") == 0
