"""Preventive campaigns carrying the debtor's personal portal link, by SMS through a real
Kannel (fakesmsc test SMSC) and by email through the aiosmtpd sink, with the real
portfolio, activities, auth, messaging and queues services over RabbitMQ and PostgreSQL.

Each contacted debtor gets one message with a link auth made for the platform (one per
run and debtor, whatever the retries or instances); the link opens the portal once with
the debtor's second factor; the hold-out gets nothing; once a message is handed over, no
row of messaging keeps the usable token.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from nameko.testing.services import entrypoint_hook
from sqlalchemy import text

from activities.service import ActivitiesService
from auth.service import AuthService
from messaging.service import MessagingService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from queues import campaigns
from queues.service import QueuesService
from recaudo_common.db import Database
from recaudo_common.errors import InvalidInput, NotAuthenticated
from recaudo_common.identity import Identity, sign

from .helpers import fire_together, record, scalar, sql, wait_for

INST = 8631
ZONE = "America/Mexico_City"
BASE = 863_000_000
DEBTORS = [BASE + n for n in range(1, 13)]     # one current account each, due in 3 days
BIRTH = "1985-02-03"
SENDER = "40404"
SUPERVISOR, ADMIN = 8641, 8649
MANAGER_PERMS = {"queues.manage", "messaging.send", "reports.view", "portfolio.read_all"}
USER, PASSWORD = "ligas@recaudo.test", "buzon-ligas-1"
DUE_IN_3 = {"all": [{"field": "stage", "op": "eq", "value": "current"},
                    {"field": "days_to_next_due", "op": "between", "value": [0, 3]}]}
LINK = re.compile(rf"/mi-cuenta/{INST}/(pl_[A-Za-z0-9_-]+)")
CAMPAIGN_TABLES = ("campaign_messages", "campaign_targets", "campaign_runs", "campaigns")


def signed(user_id, permissions, institutions=(INST,), profile="Supervisor"):
    return {"identity": sign(Identity(user_id=user_id, username=f"user{user_id}", profile=profile,
                                      permissions=frozenset(permissions),
                                      institutions=institutions))}


def phone(debtor: int) -> str:
    return f"55{debtor % 100_000_000:08d}"


class QuietPortfolioService(PortfolioService):
    db = Database(PortfolioBase, relay=False)


@pytest.fixture(scope="module")
def portfolio_rows(migrated_database, engine):
    due = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO portfolio.institutions (id, code, name, time_zone, contact_from,"
            " contact_until) VALUES (:i, 'LIG' || :i, 'Banco Ligas', :z, '00:00', '23:59:59')"
            " ON CONFLICT (id) DO UPDATE SET contact_from = '00:00', contact_until = '23:59:59'"),
            {"i": INST, "z": ZONE})
        for debtor in DEBTORS:
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name,"
                " time_zone, birth_date) VALUES (:d, :i, 'L' || :d, 'DEUDOR ' || :d, :z, :b)"),
                {"d": debtor, "i": INST, "z": ZONE, "b": BIRTH})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, balance, overdue_amount, days_past_due, stage)"
                " VALUES (:d, :i, :d, 'L' || :d, 'Tarjeta', 2500, 0, 0, 'current')"),
                {"d": debtor, "i": INST})
            conn.execute(text("INSERT INTO portfolio.instalments (account_id, number, due_date,"
                              " amount) VALUES (:a, 1, :due, 800)"), {"a": debtor, "due": due})
            conn.execute(text("INSERT INTO portfolio.phones (debtor_id, number, kind)"
                              " VALUES (:d, :p, 'mobile')"), {"d": debtor, "p": phone(debtor)})
            conn.execute(text("INSERT INTO portfolio.emails (debtor_id, address)"
                              " VALUES (:d, 'l' || :d || '@cliente.test')"), {"d": debtor})
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.accounts WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id = :i"), {"i": INST})


def _truncate(engine):
    sql(engine, "TRUNCATE " + ", ".join(f"queues.{t}" for t in CAMPAIGN_TABLES)
        + " RESTART IDENTITY CASCADE")
    sql(engine, "DELETE FROM queues.account_facts WHERE institution_id = :i", i=INST)
    for table in ("sms_messages", "outbound_messages", "templates", "institution_settings",
                  "sms_settings", "mailboxes"):
        sql(engine, f"DELETE FROM messaging.{table} WHERE institution_id = :i", i=INST)
    sql(engine, "DELETE FROM auth.portal_sessions WHERE institution_id = :i", i=INST)
    sql(engine, "DELETE FROM auth.portal_links WHERE institution_id = :i", i=INST)


@pytest.fixture
def stack(portfolio_rows, kannel_server, engine, container_factory, rabbit_config, imap_server,
          smtp_sink):
    _truncate(engine)
    imap_server.add_user(USER, PASSWORD)
    smtp_sink.clear()
    for cls in (QuietPortfolioService, ActivitiesService, AuthService, MessagingService):
        container_factory(cls, rabbit_config).start()
    queues = container_factory(QueuesService, rabbit_config)
    queues.start()
    yield queues
    _truncate(engine)


@pytest.fixture
def supervisor(stack, rpc_proxy):
    return rpc_proxy(signed(SUPERVISOR, MANAGER_PERMS))


@pytest.fixture
def templates(supervisor, rpc_proxy, kannel_server, imap_server, smtp_sink):
    """The institution's SMS gateway (the test Kannel) and mailbox (the SMTP sink), an SMS
    template printing the link where it says and an email one that does not (the link goes
    at the end); the facts resynced from the portfolio."""
    admin = rpc_proxy(signed(ADMIN, {"*"}, None, "Administrador")).messaging
    admin.save_sms_settings(INST, {
        "gateway_url": kannel_server.sendsms_url, "username": kannel_server.username,
        "password": kannel_server.password, "inbound_token": kannel_server.token,
        "sender_id": SENDER})
    admin.save_mailbox({
        "institution_id": INST, "name": "Ligas", "address": USER,
        "imap_host": "127.0.0.1", "imap_port": imap_server.port, "imap_tls": False,
        "imap_user": USER, "imap_password": PASSWORD, "smtp_host": "127.0.0.1",
        "smtp_port": smtp_sink.port, "smtp_security": "none"})
    sms = admin.save_template({
        "institution_id": INST, "name": "SMS con liga", "subject_es": "Recordatorio",
        "text_es": "Su pago vence pronto. Consulte y pague: {{ portal_link }}"})
    email = admin.save_template({
        "institution_id": INST, "name": "Correo con liga",
        "subject_es": "Su pago de la cuenta {{ account.account_number }} vence pronto",
        "text_es": "Estimado(a) {{ debtor.name }}: le recordamos su próximo pago."})
    assert supervisor.queues.resync_facts(INST)["accounts"] == len(DEBTORS)
    return {"sms": sms["id"], "email": email["id"]}


def campaign_data(template_id, **extra):
    return {"institution_id": INST, "name": "Vence pronto con liga", "conditions": DUE_IN_3,
            "channel": "sms", "template_id": template_id, "send_hour": 9,
            "holdout_share": 30, "portal_link": True, **extra}


def send_all(queues_container, engine):
    with entrypoint_hook(queues_container, "send_campaign_messages") as send:
        send()
    assert wait_for(lambda: scalar(
        engine, "SELECT count(*) FROM queues.campaign_targets WHERE state = 'pending'") == 0, 20)


def texted(kannel_server, since: int = 0) -> dict[str, list[str]]:
    """phone -> the portal tokens the test SMSC received for it (this institution's sender),
    after its first ``since`` lines (the SMSC's log is the session's)."""
    got: dict[str, list[str]] = {}
    for line in kannel_server.received()[since:]:
        parts = line.lstrip("<").split(" ", 2)
        if len(parts) == 3 and parts[0] == SENDER:
            got.setdefault(parts[1], []).extend(LINK.findall(parts[2]))
    return got


def tokens_at_rest(engine, token: str) -> int:
    """Rows of messaging (and of the activities' history) that hold ``token`` anywhere."""
    like = f"%{token}%"
    return sum(scalar(engine, query, t=like) for query in (
        "SELECT count(*) FROM messaging.sms_messages WHERE body LIKE :t",
        "SELECT count(*) FROM messaging.outbound_messages WHERE body_text LIKE :t"
        " OR body_html LIKE :t OR subject LIKE :t",
        "SELECT count(*) FROM messaging.outbox WHERE payload::text LIKE :t",
        "SELECT count(*) FROM activities.activities WHERE description LIKE :t"
        " OR details::text LIKE :t"))


def test_an_sms_campaign_sends_each_contacted_debtor_one_link_that_opens_the_portal(
        stack, supervisor, templates, engine, kannel_server, rpc_proxy):
    queues = supervisor.queues
    since = len(kannel_server.received())
    with pytest.raises(InvalidInput) as err:
        queues.save_campaign(campaign_data(templates["email"], channel="letter"))
    assert "portal_link" in err.value.fields
    with pytest.raises(InvalidInput) as err:      # its template prints the link
        queues.save_campaign(campaign_data(templates["sms"], portal_link=False))
    assert "portal_link" in err.value.fields
    campaign = queues.save_campaign(campaign_data(templates["sms"]))
    assert (campaign["id"], campaign["channel"], campaign["portal_link"]) == (1, "sms", True)
    held = {d for d in DEBTORS if campaigns.in_holdout(1, d, 30)}
    contacted = set(DEBTORS) - held
    assert held and contacted

    run = queues.run_campaign(1)
    assert (run["targeted"], run["held_out"]) == (len(DEBTORS), len(held))
    send_all(stack, engine)
    states = dict(sql(engine, "SELECT account_id, state FROM queues.campaign_targets"))
    assert {d for d, s in states.items() if s == "sent"} == contacted
    # each contacted debtor's phone gets exactly one link; the hold-out's get nothing
    assert wait_for(lambda: set(texted(kannel_server, since)) == {phone(d) for d in contacted},
                    30), texted(kannel_server, since)
    got = texted(kannel_server, since)
    assert all(len(got[phone(d)]) == 1 for d in contacted)
    links = dict(sql(engine, "SELECT debtor_id, count(*) FROM auth.portal_links"
                             " WHERE institution_id = :i GROUP BY debtor_id", i=INST))
    assert links == {d: 1 for d in contacted}
    assert {tuple(r) for r in sql(engine, "SELECT created_by, channel FROM auth.portal_links"
                                          " WHERE institution_id = :i", i=INST)} == {(0, "sms")}
    # each send is an outbound SMS activity of the campaign, naming the link, not its token
    logged = sql(engine, "SELECT account_id, kind, details FROM activities.activities"
                         " WHERE institution_id = :i AND details->>'campaign_id' = '1' AND"
                         " recorded_at >= (SELECT min(started_at) FROM queues.campaign_runs)",
                 i=INST)
    assert sorted(r.account_id for r in logged) == sorted(contacted)
    assert all(r.kind == "sms" and r.details["portal"] == "link_sent" for r in logged)

    # delivered: no row of messaging (nor the history) keeps a usable token
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM messaging.sms_messages"
                                           " WHERE institution_id = :i AND state = 'delivered'",
                                   i=INST) == len(contacted), 30)
    for debtor in contacted:
        assert tokens_at_rest(engine, got[phone(debtor)][0]) == 0
    assert scalar(engine, "SELECT count(*) FROM messaging.sms_messages WHERE institution_id = :i"
                          " AND body LIKE :m", i=INST, m=f"%/mi-cuenta/{INST}/pl_***%") \
        == len(contacted)
    # the network's delivery reports count in the campaign's report, as an email's do
    assert wait_for(lambda: queues.campaign_report(1)["delivered"] == len(contacted), 30), \
        queues.campaign_report(1)
    assert queues.campaign_report(1)["delivery_failed"] == 0

    # the link opens the portal with the debtor's second factor, once
    debtor = min(contacted)
    anon = rpc_proxy().auth
    opened = anon.open_portal_link({"institution_id": INST, "token": got[phone(debtor)][0],
                                    "answer": BIRTH})
    assert opened["debtor_id"] == debtor
    with pytest.raises(NotAuthenticated):
        anon.open_portal_link({"institution_id": INST, "token": got[phone(debtor)][0],
                               "answer": BIRTH})

    # a redelivered send answers the first message; no second link, no second SMS
    system = rpc_proxy({"identity": sign(Identity.system("queues"))})
    target = sql(engine, "SELECT * FROM queues.campaign_targets WHERE account_id = :a",
                 a=max(contacted))[0]
    request = {"account_id": target.account_id, "template_id": templates["sms"],
               "language": "es", "channel": "sms", "campaign_id": 1,
               "idempotency_key": campaigns.idempotency_key(target), "portal_link": True,
               "run_id": target.run_id}
    again = system.messaging.send_campaign_message(request)
    assert again["uuid"] == target.message_uuid
    assert scalar(engine, "SELECT count(*) FROM auth.portal_links WHERE debtor_id = :d",
                  d=target.account_id) == 1
    # auth answers the same key with the same link (a crash after it, before the send)
    key = f"campaign-1-run-{target.run_id}-debtor-{target.account_id}"
    first = system.auth.create_portal_link(target.account_id, {"channel": "sms", "key": key})
    second = system.auth.create_portal_link(target.account_id, {"channel": "sms", "key": key})
    assert first["link_id"] == second["link_id"] and first["token"] == second["token"]
    assert first["token"] == got[phone(target.account_id)][0]
    # only the platform keys a link
    staff = rpc_proxy(signed(SUPERVISOR, {"activities.log", "portfolio.read", "portfolio.read_all"}))
    with pytest.raises(InvalidInput) as err:
        staff.auth.create_portal_link(target.account_id, {"channel": "sms", "key": key})
    assert "key" in err.value.fields


def test_an_email_campaign_carries_the_link_and_keeps_no_token_once_sent(
        stack, supervisor, templates, engine, smtp_sink, rpc_proxy):
    queues = supervisor.queues
    campaign = queues.save_campaign(campaign_data(templates["email"], channel="email",
                                                  holdout_share=0))
    queues.run_campaign(campaign["id"])
    send_all(stack, engine)
    expected = {f"l{d}@cliente.test" for d in DEBTORS}
    assert wait_for(lambda: {m["To"] for m in smtp_sink.messages()} & expected == expected, 40)
    mails = {m["To"]: m for m in smtp_sink.messages() if m["To"] in expected}
    assert len(mails) == len(DEBTORS)
    tokens = {}
    for to, mail in mails.items():
        body = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        [token] = LINK.findall(body)     # the template does not print it: added at the end
        assert token in html
        tokens[to] = token
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM messaging.outbound_messages"
                                           " WHERE institution_id = :i AND state = 'sent'",
                                   i=INST) == len(DEBTORS), 20)
    for token in tokens.values():
        assert tokens_at_rest(engine, token) == 0
    debtor = DEBTORS[0]
    opened = rpc_proxy().auth.open_portal_link({
        "institution_id": INST, "token": tokens[f"l{debtor}@cliente.test"], "answer": BIRTH})
    assert opened["debtor_id"] == debtor
    assert {tuple(r) for r in sql(engine, "SELECT channel, count(*) FROM auth.portal_links"
                                          " WHERE institution_id = :i GROUP BY channel",
                                  i=INST)} == {("email", len(DEBTORS))}


@pytest.mark.instances(2)
def test_two_instances_send_each_debtor_one_sms_with_one_link(
        stack, supervisor, templates, engine, instances, kannel_server):
    since = len(kannel_server.received())
    supervisor.queues.save_campaign(campaign_data(templates["sms"], send_hour=0, holdout_share=0))
    sql(engine, "UPDATE queues.campaigns SET created_at = now() - interval '2 days'")
    ran = fire_together(instances["queues"], "run_scheduled_campaigns")
    sends = fire_together(instances["queues"], "send_campaign_messages")
    send_all(stack, engine)
    assert sorted(ran) == [0, 1]
    assert wait_for(lambda: set(texted(kannel_server, since)) == {phone(d) for d in DEBTORS}, 30)
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM messaging.sms_messages"
                                           " WHERE institution_id = :i AND state = 'delivered'",
                                   i=INST) == len(DEBTORS), 30)
    got = texted(kannel_server, since)
    links = scalar(engine, "SELECT count(*) FROM auth.portal_links WHERE institution_id = :i",
                   i=INST)
    record("campaign_links_two_instances", {
        "instances_fired": 2, "runs_made_per_instance": ran, "sent_per_instance": sends,
        "debtors": len(DEBTORS), "sms_at_smsc": sum(len(v) for v in got.values()),
        "portal_links": links})
    assert all(len(got[phone(d)]) == 1 for d in DEBTORS)
    assert links == len(DEBTORS)
    assert scalar(engine, "SELECT count(*) FROM messaging.sms_messages WHERE institution_id = :i",
                  i=INST) == len(DEBTORS)


def test_a_retry_before_the_hand_over_still_has_the_link(
        stack, supervisor, templates, engine, kannel_server):
    """The gateway away: the messages wait with their body whole (the next attempt needs
    it); once handed over, the same rows keep the link masked."""
    gateway = "UPDATE messaging.sms_settings SET gateway_url = :u WHERE institution_id = :i"
    sql(engine, gateway, u="http://127.0.0.1:9/cgi-bin/sendsms", i=INST)
    supervisor.queues.save_campaign(campaign_data(templates["sms"], holdout_share=0))
    supervisor.queues.run_campaign(1)
    send_all(stack, engine)
    rows = "SELECT attempts, state, body FROM messaging.sms_messages WHERE institution_id = :i"
    assert wait_for(lambda: {r.attempts for r in sql(engine, rows, i=INST)} == {1}, 20)
    waiting = sql(engine, rows, i=INST)
    assert len(waiting) == len(DEBTORS) and {r.state for r in waiting} == {"queued"}
    tokens = [LINK.findall(r.body)[0] for r in waiting]
    assert all(tokens_at_rest(engine, t) == 1 for t in tokens)   # the queued body only
    sql(engine, gateway, u=kannel_server.sendsms_url, i=INST)
    sql(engine, "UPDATE messaging.sms_messages SET next_attempt_at = now()"
                " WHERE institution_id = :i", i=INST)
    assert wait_for(lambda: {r.state for r in sql(engine, rows, i=INST)} == {"delivered"}, 30)
    assert all(tokens_at_rest(engine, t) == 0 for t in tokens)
    received = "\n".join(kannel_server.received())
    assert all(t in received for t in tokens)


def test_a_message_that_fails_for_good_keeps_no_token_either(
        stack, supervisor, templates, engine):
    """The gateway away until the last attempt: the message fails, and no send will ever
    need its link again, so its body is masked as a handed-over one is."""
    from messaging import sms

    gateway = "UPDATE messaging.sms_settings SET gateway_url = :u WHERE institution_id = :i"
    sql(engine, gateway, u="http://127.0.0.1:9/cgi-bin/sendsms", i=INST)
    supervisor.queues.save_campaign(campaign_data(templates["sms"], holdout_share=0))
    supervisor.queues.run_campaign(1)
    send_all(stack, engine)
    rows = "SELECT attempts, state, body FROM messaging.sms_messages WHERE institution_id = :i"
    assert wait_for(lambda: {r.attempts for r in sql(engine, rows, i=INST)} == {1}, 20)
    tokens = [LINK.findall(r.body)[0] for r in sql(engine, rows, i=INST)]
    sql(engine, "UPDATE messaging.sms_messages SET attempts = :n, next_attempt_at = now()"
                " WHERE institution_id = :i", n=sms.MAX_ATTEMPTS - 1, i=INST)
    assert wait_for(lambda: {r.state for r in sql(engine, rows, i=INST)} == {"failed"}, 30)
    assert all(tokens_at_rest(engine, t) == 0 for t in tokens)
    # and each counts as undelivered in the campaign's report
    assert wait_for(lambda: supervisor.queues.campaign_report(1)["delivery_failed"]
                    == len(tokens), 30), supervisor.queues.campaign_report(1)


def test_the_sql_mask_is_the_python_one(engine):
    from sqlalchemy import literal, select

    from messaging import portal_link

    samples = ["sin liga", "https://r.example/mi-cuenta/3/pl_" + "Ab-_9" * 9 + " y otra "
               "http://127.0.0.1:36080/mi-cuenta/12345/pl_xyz\nfin", "/mi-cuenta/x/pl_abc"]
    with engine.connect() as conn:
        for sample in samples:
            assert conn.execute(select(portal_link.masked_sql(literal(sample)))).scalar() \
                == portal_link.mask(sample)
