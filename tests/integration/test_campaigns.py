"""Preventive campaigns over RabbitMQ against the real database and mail servers: the queues
service picks accounts with its rule engine over the facts it resynced from the real
portfolio service, holds a share out, and sends through the real messaging service (the
aiosmtpd sink receives the emails; letters are filed), which applies the contact policy
and logs each send through the real activities service with the campaign's id; delivery
events come back over the broker; payments (``payment_received``) count as paid before
the due date; the report adds it up; a daily run happens once with two instances.

Institution 8801, its debtors and accounts are made for the module and removed after; the
campaign, messaging and fact tables are emptied around every test (ids restart, so the
first campaign is campaign 1 and its hold-out draw is known).
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook
from sqlalchemy import text

from activities.service import ActivitiesService
from messaging.service import MessagingService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from queues import campaigns
from queues.service import QueuesService
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import fire_together, record, scalar, sql, wait_for

INST, OTHER = 8801, 8802
ZONE = "America/Mexico_City"
BASE = 880_000_000
#: current accounts due in 3 days with a usable email (and an address)
REMINDED = [BASE + n for n in range(1, 21)]
NO_EMAIL = BASE + 31            # due in 3 days, no email at all
BLOCKED = BASE + 32             # due in 3 days, its only email is do-not-contact
NIGHT = BASE + 33               # due in 3 days, the debtor lives where it is night now
LATER = BASE + 41               # current, due in 10 days: not picked
LATE = BASE + 42                # delinquent: not picked
ALL = REMINDED + [NO_EMAIL, BLOCKED, NIGHT, LATER, LATE]
SUPERVISOR, ADMIN = 8811, 8899
MANAGER_PERMS = {"queues.manage", "messaging.send", "reports.view", "portfolio.read_all"}
MSG_TABLES = ("outbound_messages", "templates", "mailboxes", "institution_settings")
CAMPAIGN_TABLES = ("campaign_messages", "campaign_targets", "campaign_runs", "campaigns")
USER, PASSWORD = "campanas@recaudo.test", "buzon-campanas-1"
DUE_IN_3 = {"all": [{"field": "stage", "op": "eq", "value": "current"},
                    {"field": "days_to_next_due", "op": "between", "value": [0, 3]}]}


def signed(user_id, permissions, institutions=(INST,), profile="Supervisor"):
    return {"identity": sign(Identity(user_id=user_id, username=f"user{user_id}", profile=profile,
                                      permissions=frozenset(permissions),
                                      institutions=institutions))}


class QuietPortfolioService(PortfolioService):
    """Without its outbox relay: other suites' unpublished portfolio events stay put."""

    db = Database(PortfolioBase, relay=False)


def _zone_where(hours: range) -> str:
    """A zone whose local hour is now in ``hours`` (the whole test fits inside it)."""
    now = datetime.now(timezone.utc)
    for offset in range(-12, 15):
        name = f"Etc/GMT{'+' if offset <= 0 else '-'}{abs(offset)}"
        if now.astimezone(ZoneInfo(name)).hour in hours:
            return name
    raise AssertionError("no zone")


@pytest.fixture(scope="module")
def portfolio_rows(migrated_database, engine):
    today = datetime.now(ZoneInfo(ZONE)).date()
    day_zone, night_zone = _zone_where(range(9, 19)), _zone_where(range(1, 4))
    with engine.begin() as conn:
        for inst in (INST, OTHER):
            conn.execute(text(
                "INSERT INTO portfolio.institutions (id, code, name, time_zone, contact_from,"
                " contact_until) VALUES (:i, 'CMP' || :i, 'Banco ' || :i, :z, '06:00', '22:00')"
                " ON CONFLICT (id) DO UPDATE SET contact_from = '06:00', contact_until = '22:00'"),
                {"i": inst, "z": ZONE})
        for account in ALL:
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name, time_zone)"
                " VALUES (:d, :i, 'CUST' || :d, 'DEUDOR ' || :d, :z)"),
                {"d": account, "i": INST, "z": night_zone if account == NIGHT else day_zone})
            stage, dpd = ("delinquent", 20) if account == LATE else ("current", 0)
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, balance, overdue_amount, days_past_due, stage)"
                " VALUES (:d, :i, :d, 'ACC' || :d, 'Tarjeta', 5000, 0, :dpd, :s)"),
                {"d": account, "i": INST, "dpd": dpd, "s": stage})
            due = today + timedelta(days=10 if account == LATER else 3)
            conn.execute(text(
                "INSERT INTO portfolio.instalments (account_id, number, due_date, amount)"
                " VALUES (:a, 1, :due, 1200)"), {"a": account, "due": due})
            conn.execute(text(
                "INSERT INTO portfolio.addresses (debtor_id, street, municipality, state, postal_code)"
                " VALUES (:d, 'Av. Reforma ' || :d, 'Cuauhtémoc', 'CDMX', '06600')"), {"d": account})
            if account != NO_EMAIL:
                conn.execute(text(
                    "INSERT INTO portfolio.emails (debtor_id, address, do_not_contact)"
                    " VALUES (:d, 'd' || :d || '@cliente.test', :blocked)"),
                    {"d": account, "blocked": account == BLOCKED})
    yield today
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"), {"ids": ALL})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"), {"ids": ALL})
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id IN (:a, :b)"),
                     {"a": INST, "b": OTHER})


def _truncate(engine):
    sql(engine, "TRUNCATE " + ", ".join(f"queues.{t}" for t in CAMPAIGN_TABLES)
        + " RESTART IDENTITY CASCADE")
    sql(engine, "DELETE FROM queues.account_facts WHERE institution_id IN (:a, :b)",
        a=INST, b=OTHER)
    sql(engine, "DELETE FROM messaging.outbound_messages WHERE institution_id IN (:a, :b)",
        a=INST, b=OTHER)
    for table in ("templates", "institution_settings"):
        sql(engine, f"DELETE FROM messaging.{table} WHERE institution_id IN (:a, :b)",
            a=INST, b=OTHER)
    sql(engine, "DELETE FROM messaging.mailboxes WHERE institution_id IN (:a, :b)",
        a=INST, b=OTHER)


@pytest.fixture
def stack(portfolio_rows, engine, container_factory, rabbit_config, imap_server, smtp_sink):
    _truncate(engine)
    imap_server.add_user(USER, PASSWORD)
    smtp_sink.clear()
    container_factory(QuietPortfolioService, rabbit_config).start()
    container_factory(ActivitiesService, rabbit_config).start()
    container_factory(MessagingService, rabbit_config).start()
    queues = container_factory(QueuesService, rabbit_config)
    queues.start()
    yield queues
    _truncate(engine)


@pytest.fixture
def supervisor(stack, rpc_proxy):
    return rpc_proxy(signed(SUPERVISOR, MANAGER_PERMS))


@pytest.fixture
def template_id(supervisor, rpc_proxy, imap_server, smtp_sink):
    """The institution's sending mailbox (the SMTP sink) and a reminder template; the facts
    resynced from the portfolio service."""
    admin = rpc_proxy(signed(ADMIN, {"*"}, None, "Administrador")).messaging
    admin.save_mailbox({
        "institution_id": INST, "name": "Campañas", "address": USER,
        "imap_host": "127.0.0.1", "imap_port": imap_server.port, "imap_tls": False,
        "imap_user": USER, "imap_password": PASSWORD, "smtp_host": "127.0.0.1",
        "smtp_port": smtp_sink.port, "smtp_security": "none"})
    template = admin.save_template({
        "institution_id": INST, "name": "Recordatorio preventivo",
        "subject_es": "Su pago de la cuenta {{ account.account_number }} vence pronto",
        "text_es": "Estimado(a) {{ debtor.name }}: le recordamos su próximo pago."})
    assert supervisor.queues.resync_facts(INST)["accounts"] == len(ALL)
    return template["id"]


def campaign_data(template_id, **extra):
    return {"institution_id": INST, "name": "Vence en 3 días", "conditions": DUE_IN_3,
            "channel": "email", "template_id": template_id, "send_hour": 9,
            "holdout_share": 30, **extra}


def send_all(queues_container, engine):
    """Send what is pending now (the service's own timer may be sending some of it: wait
    until nothing of an active campaign is pending). Answers how many this call sent."""
    with entrypoint_hook(queues_container, "send_campaign_messages") as send:
        sent = send()
    assert wait_for(lambda: scalar(
        engine, "SELECT count(*) FROM queues.campaign_targets t JOIN queues.campaigns c"
                " ON c.id = t.campaign_id WHERE t.state = 'pending' AND c.state = 'active'") == 0,
        20)
    return sent


def targets(engine, campaign_id):
    return {r.account_id: r for r in sql(
        engine, "SELECT * FROM queues.campaign_targets WHERE campaign_id = :c", c=campaign_id)}


def campaign_activities(engine, campaign_id):
    """This test's entries of the campaign (the log is append-only: earlier runs' stay)."""
    return sql(engine, "SELECT account_id, kind, result_code, agent_id FROM activities.activities"
                       " WHERE institution_id = :i AND details->>'campaign_id' = :c"
                       " AND recorded_at >= (SELECT min(started_at) FROM queues.campaign_runs)",
               i=INST, c=str(campaign_id))


# --- email: targeting, hold-out, policy, activities, delivery, payments, report -------------------

def test_an_email_campaign_reminds_the_accounts_due_soon_except_the_holdout(
        stack, supervisor, template_id, engine, smtp_sink, rabbit_config, portfolio_rows):
    queues = supervisor.queues
    picked = REMINDED + [NO_EMAIL, BLOCKED, NIGHT]
    # the preview counts before anything is saved
    preview = queues.preview_campaign({"institution_id": INST, "conditions": DUE_IN_3,
                                       "holdout_share": 0})
    assert preview["targeted"] == len(picked) and preview["held_out"] == 0
    assert Decimal(preview["balance"]) == 5000 * len(picked)
    with pytest.raises(InvalidInput) as err:
        queues.save_campaign(campaign_data(template_id + 999))
    assert "template_id" in err.value.fields
    with pytest.raises(InvalidInput) as err:
        queues.save_campaign(campaign_data(template_id, conditions={"all": [
            {"field": "nope", "op": "eq", "value": 1}]}, holdout_share=80))
    assert set(err.value.fields) == {"conditions", "holdout_share"}

    campaign = queues.save_campaign(campaign_data(template_id))
    assert campaign["id"] == 1 and campaign["state"] == "active"
    held = {a for a in picked if campaigns.in_holdout(1, a, 30)}
    contacted = set(picked) - held
    # the draw is known for campaign 1: the accounts the policy refuses are contacted
    assert {NO_EMAIL, BLOCKED, NIGHT} <= contacted and held
    assert queues.preview_campaign({"institution_id": INST, "conditions": DUE_IN_3,
                                    "holdout_share": 30, "campaign_id": 1})["held_out"] == len(held)

    run = queues.run_campaign(1)
    assert (run["targeted"], run["held_out"]) == (len(picked), len(held))
    rows = targets(engine, 1)
    # the SQL draw is the Python one; held-out accounts are never sent anything
    assert {a for a, r in rows.items() if r.holdout} == held
    assert {r.state for a, r in rows.items() if a in held} == {"held_out"}
    assert all(r.due_date == portfolio_rows + timedelta(days=3) for r in rows.values())

    send_all(stack, engine)
    rows = targets(engine, 1)
    sent = contacted - {NO_EMAIL, BLOCKED, NIGHT}
    assert {a for a, r in rows.items() if r.state == "sent"} == sent
    assert {(a, rows[a].refusal_cause) for a in (NO_EMAIL, BLOCKED, NIGHT)} == {
        (NO_EMAIL, "no_address"), (BLOCKED, "do_not_contact"), (NIGHT, "outside_hours")}
    # the emails reach the SMTP server, one per account sent
    expected_to = {f"d{a}@cliente.test" for a in sent}
    received = lambda: {m["To"] for m in smtp_sink.messages()} & expected_to  # noqa: E731
    assert wait_for(lambda: received() == expected_to, 40)
    assert len(smtp_sink.messages()) == len(sent)
    # each send is an outbound email activity carrying the campaign, logged by the platform
    logged = campaign_activities(engine, 1)
    assert sorted(r.account_id for r in logged) == sorted(sent)
    assert {(r.kind, r.result_code, r.agent_id) for r in logged} == {("email", "CORREO_ENV", 0)}
    # delivery comes back from messaging's message_sent over the broker
    assert wait_for(lambda: queues.campaign_report(1)["delivered"] == len(sent), 20)

    # a second run the same day picks nobody again for the same due date
    assert queues.run_campaign(1)["targeted"] == 0

    # payments before the due date: two contacted accounts and one held out
    dispatch = event_dispatcher(rabbit_config)
    paid_contacted, paid_held = sorted(sent)[:2], sorted(held)[0]
    for account, amount in ((paid_contacted[0], "1200.00"), (paid_contacted[1], "600.00"),
                            (paid_held, "1200.00"), (LATER, "50.00")):
        dispatch("portfolio", "payment_received", {
            "event_id": str(uuid.uuid4()), "occurred_at": datetime.now(timezone.utc).isoformat(),
            "account_id": account, "institution_id": INST, "movement_id": account,
            "amount": amount, "value_date": portfolio_rows.isoformat(), "reference": "PAGO"})
    assert wait_for(lambda: queues.campaign_report(1)["holdout"]["paid"] == 1, 20)
    report = queues.campaign_report(1)
    assert wait_for(lambda: queues.campaign_report(1)["contacted"]["paid"] == 2, 10)
    report = queues.campaign_report(1)
    assert (report["targeted"], report["held_out"], report["sent"], report["refused"],
            report["pending"], report["failed"]) == (len(picked), len(held), len(sent), 3, 0, 0)
    assert report["refused_by_cause"] == [
        {"cause": "do_not_contact", "count": 1}, {"cause": "no_address", "count": 1},
        {"cause": "outside_hours", "count": 1}]
    assert report["contacted"]["accounts"] == len(contacted)
    assert Decimal(report["contacted"]["paid_amount"]) == Decimal("1800.00")
    assert report["contacted"]["paid_rate"] == str(
        (Decimal(200) / len(contacted)).quantize(Decimal("0.1")))
    assert report["holdout"]["paid_rate"] == str(
        (Decimal(100) / len(held)).quantize(Decimal("0.1")))
    assert [r["kind"] for r in report["runs"]] == ["manual", "manual"]


def test_a_letter_campaign_files_letters_and_logs_them(s3_server, stack, supervisor, template_id,
                                                      engine, container_factory, rabbit_config):
    from documents.service import DocumentsService

    container_factory(DocumentsService, rabbit_config).start()
    queues = supervisor.queues
    campaign = queues.save_campaign(campaign_data(
        template_id, name="Carta preventiva", channel="letter", holdout_share=0,
        conditions={"all": [{"field": "stage", "op": "eq", "value": "current"},
                            {"field": "days_to_next_due", "op": "gte", "value": 5}]}))
    assert queues.run_campaign(campaign["id"])["targeted"] == 1      # LATER only
    send_all(stack, engine)
    assert targets(engine, campaign["id"])[LATER].state == "sent"
    letter = sql(engine, "SELECT channel, state, to_address, mailbox_id, campaign_id"
                         " FROM messaging.outbound_messages WHERE account_id = :a", a=LATER)
    assert wait_for(lambda: sql(engine, "SELECT state FROM messaging.outbound_messages"
                                        " WHERE account_id = :a", a=LATER)[0][0] == "sent")
    channel, _, to_address, mailbox_id, campaign_id = letter[0]
    assert (channel, mailbox_id, campaign_id) == ("letter", None, campaign["id"])
    assert to_address.startswith(f"Av. Reforma {LATER}")
    assert [(r.kind, r.result_code) for r in campaign_activities(engine, campaign["id"])] == [
        ("letter", "CARTA_ENV")]
    assert wait_for(lambda: queues.campaign_report(campaign["id"])["delivered"] == 1, 20)
    # the letter's PDF is filed as a document of the debtor (messaging's settle timer)
    filed = "SELECT attachments->0->>'version_id' FROM messaging.outbound_messages" \
            " WHERE account_id = :a AND pdf IS NULL"
    assert wait_for(lambda: any(v for (v,) in sql(engine, filed, a=LATER)), 30)
    assert scalar(engine, "SELECT count(*) FROM documents.documents WHERE debtor_id = :d"
                          " AND category = 'carta'", d=LATER) >= 1


# --- schedule: once a day with several instances, pause, scope --------------------------------

def test_the_daily_run_happens_once_with_two_instances(
        stack, supervisor, template_id, engine, container_factory, rabbit_config):
    queues = supervisor.queues
    campaign = queues.save_campaign(campaign_data(template_id, send_hour=0))
    # created today after 00:00: the first scheduled run is tomorrow's
    with entrypoint_hook(stack, "run_scheduled_campaigns") as tick:
        assert tick() == 0
    sql(engine, "UPDATE queues.campaigns SET created_at = now() - interval '2 days'")
    second = container_factory(QueuesService, rabbit_config)
    second.start()

    def tick_on(container):
        with entrypoint_hook(container, "run_scheduled_campaigns") as tick:
            tick()

    threads = [eventlet.spawn(tick_on, c) for c in (stack, second, stack, second)]
    for thread in threads:
        thread.wait()
    runs = sql(engine, "SELECT kind, day, targeted FROM queues.campaign_runs")
    today = datetime.now(ZoneInfo(ZONE)).date()
    assert runs == [("scheduled", today, len(REMINDED) + 3)]
    assert scalar(engine, "SELECT count(*) FROM queues.campaign_targets") == len(REMINDED) + 3
    assert scalar(engine, "SELECT count(*) FROM queues.outbox WHERE event_type = 'campaign_ran'"
                          " AND payload->>'kind' = 'scheduled' AND created_at >="
                          " (SELECT started_at FROM queues.campaign_runs)") == 1

    # paused: no run, and what is pending waits (the service's timer may have sent some)
    queues.set_campaign_state(campaign["id"], "paused")
    pending = "SELECT count(*) FROM queues.campaign_targets WHERE state = 'pending'"
    waiting = scalar(engine, pending)
    with entrypoint_hook(stack, "send_campaign_messages") as send:
        assert send() == 0
    assert scalar(engine, pending) == waiting
    with pytest.raises(Conflict):
        queues.run_campaign(campaign["id"])
    queues.set_campaign_state(campaign["id"], "active")
    send_all(stack, engine)
    assert scalar(engine, pending) == 0


@pytest.mark.instances(2)
def test_two_instances_run_the_day_once_and_mail_each_target_once(
        stack, supervisor, template_id, engine, instances, smtp_sink):
    supervisor.queues.save_campaign(campaign_data(template_id, send_hour=0))
    sql(engine, "UPDATE queues.campaigns SET created_at = now() - interval '2 days'")
    ran = fire_together(instances["queues"], "run_scheduled_campaigns")
    fire_together(instances["queues"], "send_campaign_messages")
    send_all(stack, engine)
    sent = scalar(engine, "SELECT count(*) FROM queues.campaign_targets WHERE state = 'sent'")
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM messaging.outbound_messages "
                                           "WHERE state = 'sent' AND institution_id = :i",
                                           i=INST) == sent, 30)
    mails = smtp_sink.messages()
    record("timers_campaign_run_and_sends", {
        "instances_fired": 2, "runs_made_per_instance": ran, "targets_sent": sent,
        "outbound_messages": scalar(engine, "SELECT count(*) FROM messaging.outbound_messages "
                                            "WHERE institution_id = :i", i=INST),
        "smtp_messages": len(mails)})
    assert sorted(ran) == [0, 1]
    assert sent > 0 and len(mails) == sent
    assert len({m["X-Recaudo-Message-Id"] for m in mails}) == sent
    # this institution's (the demo campaign's messages may be in the database too)
    assert scalar(engine, "SELECT count(*) FROM messaging.outbound_messages "
                          "WHERE institution_id = :i", i=INST) == sent


def test_the_day_s_run_row_is_claimed_by_one_transaction_only(stack, supervisor, template_id,
                                                               engine):
    """Two transactions insert the same (campaign, day) run: the second waits for the first
    and, once it commits, gets nothing (so it picks nothing)."""
    from sqlalchemy.orm import Session

    from queues.models import Campaign

    campaign_id = supervisor.queues.save_campaign(campaign_data(template_id))["id"]
    day = date(2026, 12, 1)
    first, second = Session(engine), Session(engine)
    try:
        assert campaigns.claim_scheduled_run(first, first.get(Campaign, campaign_id), day)
        waiter = eventlet.spawn(campaigns.claim_scheduled_run, second,
                                second.get(Campaign, campaign_id), day)
        eventlet.sleep(0.3)
        first.commit()
        assert waiter.wait() is None
        second.commit()
    finally:
        first.close()
        second.close()
    assert scalar(engine, "SELECT count(*) FROM queues.campaign_runs WHERE day = :d",
                  d=day) == 1


def test_campaigns_answer_their_callers_only(stack, supervisor, template_id, rpc_proxy):
    campaign = supervisor.queues.save_campaign(campaign_data(template_id))
    outsider = rpc_proxy(signed(1, MANAGER_PERMS, institutions=(OTHER,))).queues
    for call in (lambda: outsider.get_campaign(campaign["id"]),
                 lambda: outsider.campaign_report(campaign["id"]),
                 lambda: outsider.run_campaign(campaign["id"])):
        with pytest.raises(NotFound):
            call()
    collector = rpc_proxy(signed(2, {"queues.work", "messaging.send"})).queues
    with pytest.raises(PermissionDenied):
        collector.save_campaign(campaign_data(template_id, name="Otra"))
    reader = rpc_proxy(signed(3, {"reports.view"})).queues
    assert reader.campaign_report(campaign["id"])["targeted"] == 0
    with pytest.raises(PermissionDenied):
        reader.run_campaign(campaign["id"])
    with pytest.raises(Conflict) as err:
        supervisor.queues.save_campaign(campaign_data(template_id))
    assert "name" in err.value.fields


def test_the_sql_holdout_draw_is_the_python_one(engine):
    """The pick draws in PostgreSQL what ``holdout_bucket`` draws in Python, for any id."""
    from sqlalchemy import func, select

    series = func.generate_series(2_147_483_000, 2_147_485_000).table_valued("id").render_derived()
    with engine.connect() as conn:
        drawn = dict(conn.execute(select(series.c.id, campaigns._holdout_bucket_sql(
            17, series.c.id))).all())
    assert len(drawn) == 2001
    assert drawn == {a: campaigns.holdout_bucket(17, a) for a in drawn}


def test_the_demo_campaign_is_made_through_the_service_once(stack, template_id, rpc_proxy, engine):
    """``recaudo seed-live``'s campaign: saved and run through the queues service's RPCs,
    as the platform; a second seeding leaves it alone."""
    from queues import seed

    platform = rpc_proxy({"identity": sign(Identity.system("seed"))}, timeout=60)
    sql(engine, "UPDATE messaging.templates SET name = :n WHERE id = :t", n=seed.TEMPLATE,
        t=template_id)
    made = seed.seed_campaign(platform, INST)
    assert made["name"] == seed.CAMPAIGN and made["holdout_share"] == 10
    assert seed.seed_campaign(platform, INST) is None
    runs = sql(engine, "SELECT kind, targeted FROM queues.campaign_runs")
    assert runs == [("manual", len(REMINDED) + 3)]
