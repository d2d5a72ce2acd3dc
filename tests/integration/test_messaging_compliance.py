"""Messaging under the stored contact policy (issue 24), over RabbitMQ with the real
portfolio, activities and messaging services, the SMTP sink and the database:

* an email is judged by the version an officer stored (not the seeded one in the code),
  its refusal answers 409 naming the rule and that version and is in the compliance log,
  as is an administrator's override;
* MX, no hidden caller id: an outbound call with no known outbound number is refused
  (logged), one with the institution's number or the agent's line keeps the number;
* MX, every agreement in writing: a promise made on a call is emailed to the debtor by
  messaging, judged like any contact, and the send is an activity of the account; in
  English when that is the debtor's preferred language.

Uses test_messaging's institutions and services; the policy versions written here and the
settings changed are put back after (the compliance log is append-only and stays).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from recaudo_common.errors import Conflict

from .helpers import sql, wait_for
from .messaging_world import (  # noqa: F401 (fixtures)
    ADMIN, D1, D2, GESTOR, GESTOR_PERMS, INST, _setup_sending, activities_of, admin, gestor, mail,
    portfolio_rows, services, signed)

OUTBOUND = "5550008701"


@pytest.fixture
def policies(engine):
    """Versions written by a test are removed after; the institution back under 'ZZ'."""
    yield
    sql(engine, "DELETE FROM activities.contact_policies WHERE created_by = :a", a=ADMIN)
    sql(engine, "UPDATE portfolio.institutions SET jurisdiction = 'ZZ' WHERE id = :i", i=INST)
    sql(engine, "UPDATE activities.institution_settings SET outbound_number = NULL "
                "WHERE institution_id = :i", i=INST)
    sql(engine, "DELETE FROM activities.debtor_preferences WHERE debtor_id IN (:a, :b)",
        a=D1, b=D2)


@pytest.fixture
def officer(services, rpc_proxy):
    return rpc_proxy(signed(ADMIN, {"*"}, None, "Administrador")).activities


def log_of(engine, account_id):
    return [dict(r._mapping) for r in sql(
        engine, "SELECT * FROM activities.compliance_log WHERE account_id = :a ORDER BY id",
        a=account_id)]


def test_an_email_is_judged_by_the_stored_version_and_its_refusal_is_logged(
        admin, gestor, officer, imap_server, smtp_sink, engine, policies):
    _, template = _setup_sending(admin, imap_server, smtp_sink)
    # the default policy ("*", institution under 'ZZ') as an officer rewrote it: its window
    # closes now in the debtor's zone (the seeded one and the institution's are all day)
    local = datetime.now(ZoneInfo("America/Mexico_City"))
    opens, closes = (local + timedelta(hours=2)).strftime("%H:%M"), \
        (local + timedelta(hours=3)).strftime("%H:%M")
    stored = officer.save_contact_policy("*", {
        "effective_from": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(),
        "rules": [{"rule": "do_not_contact"}, {"rule": "window", "from": opens, "until": closes}],
        "note": "prueba de integración"})
    version = f"*-{stored['version']}"
    assert stored["created_by_name"] == f"user{ADMIN}"
    before = len(log_of(engine, D1))
    with pytest.raises(Conflict) as err:
        gestor.send_email({"account_id": D1, "template_id": template["id"],
                           "to": "ana@cliente.test"})
    assert err.value.fields["rule"] == ["window"]
    assert err.value.fields["policy_version"] == [version]
    assert "Fuera del horario" in err.value.fields["compliance"][0]
    refused = log_of(engine, D1)[before:]
    assert [(e["channel"], e["rule"], e["policy_version"], e["decision"], e["user_id"])
            for e in refused] == [("email", "window", version, "refused", GESTOR)]
    # an administrator's justified override: sent, and on the record with the version
    forced = admin.send_email({"account_id": D1, "template_id": template["id"],
                               "to": "ana@cliente.test",
                               "override": {"justification": "Aviso legal obligatorio hoy"}})
    assert "Aviso legal" in forced["override_justification"]
    overridden = log_of(engine, D1)[before + 1:]
    assert [(e["decision"], e["policy_version"], e["justification"]) for e in overridden] == [
        ("overridden", version, "Aviso legal obligatorio hoy")]
    assert sql(engine, "SELECT count(*) FROM messaging.outbound_messages")[0][0] == 1


def _mx(officer, engine, *rules):
    """Institution INST under MX, its policy a stored version with ``rules`` (no window: the
    test does not depend on the hour it runs at)."""
    sql(engine, "UPDATE portfolio.institutions SET jurisdiction = 'MX' WHERE id = :i", i=INST)
    return officer.save_contact_policy("MX", {
        "effective_from": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(),
        "rules": [{"rule": r} for r in rules], "note": "prueba de integración"})


def a_call(account_id, **extra):
    start = datetime.now(timezone.utc) - timedelta(minutes=2)
    return {"account_id": account_id, "kind": "call", "direction": "outbound",
            "started_at": start.isoformat(), "ended_at": (start + timedelta(minutes=1)).isoformat(),
            "result_code": "NC", "description": "Llamada de prueba", **extra}


def test_mx_no_hidden_caller_id_the_outbound_number_is_known_and_kept(
        officer, services, rpc_proxy, engine, policies):
    stored = _mx(officer, engine, "do_not_contact", "third_party", "caller_id")
    activities = rpc_proxy(signed(GESTOR, GESTOR_PERMS)).activities
    before = len(log_of(engine, D2))
    with pytest.raises(Conflict) as err:
        activities.log_activity(a_call(D2))
    assert err.value.fields["rule"] == ["caller_id"]
    assert err.value.fields["policy_version"] == [f"MX-{stored['version']}"]
    assert "identificador oculto" in err.value.fields["reason"][0]
    assert [(e["channel"], e["rule"]) for e in log_of(engine, D2)[before:]] == [("call", "caller_id")]
    # the agent's own line, given with the call
    logged = activities.log_activity(a_call(D2, caller_id="+52 55 1234 5678"))
    assert logged["details"]["caller_id"] == "525512345678"
    # else the institution's outbound number
    officer.save_settings(INST, {"dispute_sla_days": 10, "attribution_days": 30,
                                 "time_zone": "America/Mexico_City", "outbound_number": OUTBOUND})
    logged = activities.log_activity(a_call(D2))
    assert logged["details"]["caller_id"] == OUTBOUND


def test_mx_an_agreement_made_on_a_call_is_sent_to_the_debtor_in_writing(
        admin, officer, rpc_proxy, imap_server, smtp_sink, engine, policies):
    _setup_sending(admin, imap_server, smtp_sink)
    stored = _mx(officer, engine, "do_not_contact", "third_party", "caller_id",
                 "written_agreement")
    activities = rpc_proxy(signed(GESTOR, GESTOR_PERMS)).activities
    due = date.today() + timedelta(days=10)
    logged = activities.log_activity(a_call(D1, caller_id=OUTBOUND, result_code="PP",
                                            promise={"amount": "1250.00",
                                                     "due_date": due.isoformat()}))
    promise_id = logged["promise"]["id"]

    def sent():
        return [m for m in smtp_sink.messages()
                if m["Subject"] == "Confirmación de su acuerdo de pago"]
    assert wait_for(lambda: sent(), 30), "the agreement was not emailed"
    (msg,) = sent()
    body = msg.get_body(("plain",)).get_content()
    assert msg["To"] == "ana@cliente.test"
    assert "$1,250.00" in body and due.strftime("%d/%m/%Y") in body and f"ACC{D1}" in body
    # the send is on the record: an outbound email activity naming the promise and version
    written = [a for a in activities_of(engine, D1) if a["kind"] == "email"
               and f"Acuerdo de pago {promise_id} enviado por escrito" in a["description"]]
    assert len(written) == 1 and f"MX-{stored['version']}" in written[0]["description"]
    # a promise under a policy without the rule (the default) sends nothing
    sql(engine, "UPDATE portfolio.institutions SET jurisdiction = 'ZZ' WHERE id = :i", i=INST)
    activities.log_activity(a_call(D1, result_code="PP", promise={
        "amount": "300.00", "due_date": due.isoformat()}))
    assert not wait_for(lambda: len(sent()) > 1, 4)


def test_mx_an_agreement_goes_in_writing_in_the_debtors_preferred_language(
        admin, officer, rpc_proxy, imap_server, smtp_sink, engine, policies):
    _setup_sending(admin, imap_server, smtp_sink)
    _mx(officer, engine, "do_not_contact", "third_party", "caller_id", "written_agreement")
    activities = rpc_proxy(signed(GESTOR, GESTOR_PERMS)).activities
    activities.save_debtor_preferences(D1, {"language": "en"})
    due = date.today() + timedelta(days=10)
    logged = activities.log_activity(a_call(D1, caller_id=OUTBOUND, result_code="PP",
                                            promise={"amount": "1250.00",
                                                     "due_date": due.isoformat()}))

    def sent(subject):
        return [m for m in smtp_sink.messages() if m["Subject"] == subject]
    assert wait_for(lambda: sent("Confirmation of your payment agreement"), 30), \
        [m["Subject"] for m in smtp_sink.messages()]
    (msg,) = sent("Confirmation of your payment agreement")
    body = msg.get_body(("plain",)).get_content()
    assert body.startswith("Dear ") and "payment agreement for your account" in body
    assert "$1,250.00" in body and due.isoformat() in body and f"ACC{D1}" in body
    assert "Estimado" not in body and sent("Confirmación de su acuerdo de pago") == []
    assert sql(engine, "SELECT language FROM messaging.outbound_messages"
                       " WHERE idempotency_key = :k", k=f"agreement-{logged['promise']['id']}") \
        == [("en",)]
