"""The activities service over RabbitMQ against the real database, with the real portfolio
service answering its account look-ups: logging and idempotent retries, refusals that
store nothing, outbound calls judged by the contact policy (and an administrator's
override kept on the record), the hash chain catching an edited row, promises kept by payment events
(through the broker) and broken by the expiry, the dispute lifecycle, the agenda and
its calendar feed, and productivity rollups equal to a recomputation from the raw log.

The activities tables are saved aside for the module and restored after (truncated
around every test); the portfolio rows the tests use (institutions 1 and 2 if missing,
debtors and accounts with ids from ``BASE``) are removed after. Callers are signed
identities, as the gateway would send.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from activities import catalogue, seed
from activities import log as contact_log
from activities.service import ActivitiesService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from recaudo_common import contracts, demo
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import counting, fire_together, record, scalar, sql, wait_for

from .activities_world import (ADMIN, GESTOR1, GESTOR2, GESTOR3, SUPERVISOR, BASE, ACC1, ACC2,
                               TEAM, ZONE, TABLES, SEQUENCES, SAVED, signed, GESTOR_PERMS,
                               SUPERVISOR_PERMS, _restore, saved_tables, portfolio_rows, _truncate,
                               QuietPortfolioService, services, as_user, gestor1, supervisor,
                               admin, now, today, call, outbox, counts, payment)


def test_logging_chains_the_entry_emits_it_and_a_retry_stores_it_once(gestor1, admin, engine):
    first = gestor1.log_activity(call(idempotency_key="form-1"))
    assert first["seq"] == 1 and first["agent_id"] == GESTOR1 and first["contact_made"]
    assert first["institution_id"] == 1 and first["debtor_id"] == ACC1[0]
    assert first["result_code"] == "CT" and first["promise"] is None

    again = gestor1.log_activity(call(idempotency_key="form-1", description="otra vez"))
    assert again["id"] == first["id"] and again["description"] == first["description"]
    assert scalar(engine, "SELECT count(*) FROM activities.activities") == 1

    second = gestor1.log_activity(call(code="NC", idempotency_key="form-2"))
    prev_hash, seq = sql(engine, "SELECT prev_hash, seq FROM activities.activities WHERE id = :i",
                         i=second["id"])[0]
    assert seq == 2 and prev_hash == first["hash"] and not second["contact_made"]

    (logged, _) = outbox(engine, "activity_logged")
    assert logged["activity_id"] == first["id"] and logged["account_id"] == ACC1[0]
    assert logged["agent_id"] == GESTOR1 and logged["institution_id"] == 1
    assert logged["contact_made"] is True and logged["result_code"] == "CT"
    assert logged["needs_promise"] is False and logged["phone"] == "5512345678"
    assert admin.verify_chain(ACC1[0])["ok"] is True
    # the relay publishes what was committed
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM activities.outbox "
                                           "WHERE published_at IS NULL") == 0)


def test_a_retry_is_answered_from_the_key_before_any_portfolio_call(gestor1, as_user, engine,
                                                                    monkeypatch):
    """The key is looked up first, and once: a retry costs the portfolio nothing. Keys are
    per user, so another collector's same key is a logging of theirs, scoped as any other."""
    asked = {name: counting(monkeypatch, PortfolioService, name)
             for name in ("get_account", "get_contact_view")}
    looked_up = counting(monkeypatch, contact_log, "find_by_key")
    inbound = call(direction="inbound", idempotency_key="once-1")   # not judged: the account
    first = gestor1.log_activity(call(idempotency_key="once-0"))
    answered = gestor1.log_activity(inbound)
    assert (len(asked["get_contact_view"]), len(asked["get_account"])) == (1, 1)
    assert looked_up == [None, None]

    assert gestor1.log_activity(call(idempotency_key="once-0"))["id"] == first["id"]
    assert gestor1.log_activity(inbound)["id"] == answered["id"]
    assert (len(asked["get_contact_view"]), len(asked["get_account"])) == (1, 1)

    with pytest.raises(NotFound):          # GESTOR3's "once-0" is theirs: not GESTOR1's entry
        as_user(GESTOR3).log_activity(call(idempotency_key="once-0"))
    assert scalar(engine, "SELECT count(*) FROM activities.activities") == 2


BAD = {
    "end before start": (dict(ended_at=(now() - timedelta(hours=1)).isoformat()), "ended_at"),
    "past-date promise": (dict(code="PP", promise={"amount": "500.00",
                                                   "due_date": "2020-01-01"}), "promise"),
    "zero amount": (dict(code="PP", promise={"amount": "0", "due_date": "2099-01-01"}), "promise"),
    "negative amount": (dict(code="PP", promise={"amount": "-10", "due_date": "2099-01-01"}),
                        "promise"),
    "promise missing": (dict(code="PP"), "promise"),
    "unknown code": (dict(code="NOEXISTE"), "result_code"),
    "1 MB description": (dict(description="x" * (1024 * 1024)), "description"),
    "callback missing": (dict(code="LLM"), "callback_at"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_naming_the_field_and_stores_nothing(gestor1, engine, case):
    changes, field = BAD[case]
    before = counts(engine)
    with pytest.raises(InvalidInput) as err:
        gestor1.log_activity(call(**changes))
    assert field in err.value.fields, err.value.fields
    assert counts(engine) == before


def test_another_institutions_code_and_out_of_scope_accounts_are_refused(gestor1, as_user,
                                                                          engine):
    gestor2 = as_user(GESTOR2, institutions=(2,))
    codes2 = gestor2.list_result_codes(2)
    before = counts(engine)
    with pytest.raises(InvalidInput) as err:
        gestor1.log_activity(call(code=None, result_code_id=codes2[0]["id"]))
    assert "result_code_id" in err.value.fields
    with pytest.raises(NotFound):                 # institution 2's account, out of scope
        gestor1.log_activity(call(account_id=ACC2))
    other = as_user(GESTOR3)                       # same institution, not their account
    with pytest.raises(NotFound):
        other.log_activity(call())
    with pytest.raises(PermissionDenied):          # a creditor reads, never logs
        as_user(9000, {"portfolio.read", "portfolio.read_all", "activities.read"}).log_activity(call())
    assert counts(engine) == before
    with pytest.raises(NotFound):
        other.account_history(ACC1[0])


# --- the contact policy -----------------------------------------------------------------------

DO_NOT_CALL = "5599990000"
JUSTIFIED = {"justification": "Orden judicial: notificación obligatoria"}


@pytest.fixture
def policy(engine):
    """ACC1[1]'s debtor with a do-not-call phone and a callable one; institution 1 open
    08:00-20:00. Answers a maker of a call at a local hour of yesterday in ``ZONE`` (a call
    is judged when it started, whatever the hour it is logged at). All put back after."""
    debtor = ACC1[1]
    sql(engine, "INSERT INTO portfolio.phones (debtor_id, number, priority, do_not_call) VALUES "
                "(:d, :n, 1, true), (:d, '5512345678', 2, false)", d=debtor, n=DO_NOT_CALL)
    sql(engine, "UPDATE portfolio.institutions SET contact_from = '08:00', contact_until = '20:00',"
                " jurisdiction = 'MX' WHERE id = 1")
    # MX: no hidden caller id, so the institution's calls go out from a known number
    with engine.begin() as conn:
        catalogue.ensure_catalogue(Session(bind=conn), 1)
    sql(engine, "UPDATE activities.institution_settings SET outbound_number = '5550000001' "
                "WHERE institution_id = 1")

    def at(hour: int, account_id=debtor, **extra) -> dict:
        local = datetime.combine(today() - timedelta(days=1), datetime.min.time(),
                                 tzinfo=ZoneInfo(ZONE))
        start = (local + timedelta(hours=hour)).astimezone(timezone.utc)
        return {**call(account_id=account_id, **extra), "started_at": start.isoformat(),
                "ended_at": (start + timedelta(minutes=3)).isoformat()}
    try:
        yield at
    finally:
        sql(engine, "DELETE FROM portfolio.phones WHERE debtor_id = :d", d=debtor)
        sql(engine, "UPDATE portfolio.debtors SET time_zone = :z WHERE id = :d", z=ZONE, d=debtor)
        sql(engine, "UPDATE portfolio.institutions SET contact_from = '00:00', "
                    "contact_until = '23:59:59', jurisdiction = 'ZZ' WHERE id = 1")


def test_a_call_to_a_do_not_call_phone_is_refused_naming_phone_and_stores_nothing(
        gestor1, engine, policy):
    before = counts(engine)
    with pytest.raises(Conflict) as err:
        gestor1.log_activity(policy(12, phone="55 9999 0000", idempotency_key="dnc-1"))
    assert list(err.value.fields)[0] == "phone"
    assert "no ser contactado" in err.value.fields["phone"][0]
    assert (err.value.fields["rule"], err.value.fields["policy_version"]) == (
        ["do_not_contact"], ["MX-2"])
    with pytest.raises(PermissionDenied):          # a collector cannot override
        gestor1.log_activity(policy(12, phone=DO_NOT_CALL, override=JUSTIFIED))
    assert counts(engine) == before
    # the debtor's other number is fine at that hour (and the key was not spent)
    logged = gestor1.log_activity(policy(12, idempotency_key="dnc-1"))
    assert logged["phone"] == "5512345678" and "compliance_override" not in logged["details"]


def test_a_call_started_outside_the_window_in_the_debtors_zone_is_refused_naming_started_at(
        gestor1, engine, policy):
    before = counts(engine)
    with pytest.raises(Conflict) as err:           # 06:00 in Mexico City: before 08:00
        gestor1.log_activity(policy(6))
    assert list(err.value.fields)[0] == "started_at"
    assert "08:00-20:00" in err.value.fields["started_at"][0]
    assert "allí son las 06:00" in err.value.fields["started_at"][0]
    # 12:00 in Mexico City is 03:00 the next day in Tokyo: the debtor's own zone rules
    sql(engine, "UPDATE portfolio.debtors SET time_zone = 'Asia/Tokyo' WHERE id = :d",
        d=ACC1[1])
    with pytest.raises(Conflict) as err:
        gestor1.log_activity(policy(12))
    assert "allí son las 03:00" in err.value.fields["started_at"][0]
    assert counts(engine) == before
    sql(engine, "UPDATE portfolio.debtors SET time_zone = :z WHERE id = :d", z=ZONE, d=ACC1[1])
    # judged when it started, not when it is logged: noon yesterday is fine at any hour now
    assert gestor1.log_activity(policy(12))["seq"] == 1


def test_an_administrators_override_is_stored_with_its_justification(admin, engine, policy):
    with pytest.raises(InvalidInput) as err:       # a reason in words, not blanks
        admin.log_activity(policy(23, phone=DO_NOT_CALL, override={"justification": " " * 20}))
    assert "override" in err.value.fields
    assert counts(engine)["activities"] == 0
    logged = admin.log_activity(policy(23, phone=DO_NOT_CALL, override=JUSTIFIED))
    record = logged["details"]["compliance_override"]
    assert "no ser contactado" in record and "Autorizado por user8899" in record
    assert "Orden judicial" in record
    stored = scalar(engine, "SELECT details FROM activities.activities WHERE id = :i",
                    i=logged["id"])
    assert stored["compliance_override"] == record
    assert admin.verify_chain(ACC1[1])["ok"] is True          # it is part of the chained entry
    late = admin.log_activity(policy(21, override=JUSTIFIED))  # 21:00: after the window
    assert "Fuera del horario" in late["details"]["compliance_override"]
    # an override the policy did not need leaves no record
    assert "compliance_override" not in admin.log_activity(
        policy(12, override=JUSTIFIED))["details"]


def test_inbound_calls_and_notes_are_not_judged(gestor1, engine, policy):
    inbound = gestor1.log_activity(policy(3, phone=DO_NOT_CALL, direction="inbound"))
    note = gestor1.log_activity({**policy(3), "kind": "note", "phone": None,
                                 "result_code": None})
    visit = gestor1.log_activity({**policy(3), "kind": "visit", "phone": None})
    assert [a["seq"] for a in (inbound, note, visit)] == [1, 2, 3]
    assert counts(engine)["activities"] == 3


def test_an_outbound_call_without_a_phone_is_still_judged_by_its_hour(gestor1, engine, policy):
    before = counts(engine)
    with pytest.raises(Conflict) as err:           # 03:00 in Mexico City, no number named
        gestor1.log_activity(policy(3, phone=None))
    assert list(err.value.fields)[0] == "started_at"
    assert counts(engine) == before
    assert gestor1.log_activity(policy(12, phone=None))["phone"] is None


def test_history_is_newest_first_paginated_and_shows_corrections(gestor1, supervisor, engine):
    ids = [gestor1.log_activity(call(minutes_ago=60 - k, description=f"gestión {k}"))["id"]
           for k in range(5)]
    page = gestor1.account_history(ACC1[0], {"page": 1, "per_page": 2})
    assert page["total"] == 5 and page["pages"] == 3
    assert [i["id"] for i in page["items"]] == [ids[4], ids[3]]
    assert page["items"][0]["result_label"] == "Contacto con titular"

    fixed = supervisor.correct_activity(ids[1], {
        "kind": "call", "started_at": (now() - timedelta(minutes=59)).isoformat(),
        "result_code": "NC", "description": "No era el titular"})
    assert fixed["corrects_id"] == ids[1] and fixed["agent_id"] == GESTOR1
    assert fixed["logged_by"] == SUPERVISOR and fixed["seq"] == 6
    with pytest.raises(Conflict):
        gestor1.correct_activity(ids[1], {"kind": "note", "started_at": now().isoformat()})
    items = gestor1.account_history(ACC1[0], {"per_page": 50})["items"]
    original = next(i for i in items if i["id"] == ids[1])
    assert original["corrected_by_id"] == fixed["id"] and original["description"] == "gestión 1"


def test_the_hash_chain_detects_an_edited_row(gestor1, admin, engine):
    ids = [gestor1.log_activity(call(minutes_ago=30 - k, description=f"gestión {k}"))["id"]
           for k in range(3)]
    assert admin.verify_chain(ACC1[0]) | {"last_id": None} == {
        "account_id": ACC1[0], "ok": True, "entries": 3, "broken_id": None,
        "broken_seq": None, "reason": "", "last_id": None}
    with pytest.raises(Exception, match="append-only"):  # the database refuses edits
        sql(engine, "UPDATE activities.activities SET description = 'x' WHERE id = :i", i=ids[1])
    # someone able to switch the guard off edits the middle entry
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE activities.activities DISABLE TRIGGER activities_append_only"))
        conn.execute(text("UPDATE activities.activities SET description = 'Pagó todo' "
                          "WHERE id = :i"), {"i": ids[1]})
        conn.execute(text("ALTER TABLE activities.activities ENABLE TRIGGER activities_append_only"))
    result = admin.verify_chain(ACC1[0])
    assert result["ok"] is False and result["broken_id"] == ids[1] and result["broken_seq"] == 2
    with pytest.raises(PermissionDenied):
        gestor1.verify_chain(ACC1[0])
    with pytest.raises(NotFound):
        admin.verify_chain(BASE + 999)


def test_a_supervisor_checks_the_chain_of_their_teams_accounts(gestor1, supervisor, admin,
                                                               as_user):
    """Issue 18: the check was admin-only, though supervisors answer for their teams'
    logs. A supervisor checks an account of their agent's; another team's answers as
    missing; a collector (who leads nobody) still may not."""
    gestor1.log_activity(call(description="para verificar"))
    result = supervisor.verify_chain(ACC1[0])
    assert result["ok"] is True and result["entries"] == 1
    # only an administrator's note, but the account is assigned to their agent
    admin.log_activity({"account_id": ACC1[2], "kind": "note",
                        "started_at": now().isoformat(), "description": "nota"})
    assert supervisor.verify_chain(ACC1[2])["ok"] is True
    other_team = as_user(8860, SUPERVISOR_PERMS, None, (GESTOR3,))
    for account_id in (ACC1[0], ACC1[2]):
        with pytest.raises(NotFound):
            other_team.verify_chain(account_id)
    with pytest.raises(PermissionDenied):
        gestor1.verify_chain(ACC1[0])


def test_concurrent_logging_on_one_account_keeps_one_unbroken_chain(as_user, admin, engine,
                                                                    rpc_proxy):
    """Appends to one account are serialised on its chain head; retries of one key racing
    each other store a single entry."""
    import eventlet

    proxies = [rpc_proxy(signed(GESTOR1, GESTOR_PERMS)).activities for _ in range(16)]
    pool = eventlet.GreenPool(16)
    ids = list(pool.imap(lambda k: proxies[k].log_activity(
        call(account_id=ACC1[3], minutes_ago=30, description=f"en paralelo {k}"))["id"],
        range(16)))
    assert len(set(ids)) == 16
    retried = list(pool.imap(lambda k: proxies[k].log_activity(
        call(account_id=ACC1[3], idempotency_key="doble-clic"))["id"], range(8)))
    assert len(set(retried)) == 1
    seqs = [r[0] for r in sql(engine, "SELECT seq FROM activities.activities WHERE account_id = :a "
                                      "ORDER BY seq", a=ACC1[3])]
    assert seqs == list(range(1, 18))
    assert admin.verify_chain(ACC1[3])["ok"] is True


def test_removing_the_newest_entry_is_detected(gestor1, admin, engine):
    ids = [gestor1.log_activity(call(account_id=ACC1[1], minutes_ago=20 - k))["id"]
           for k in range(2)]
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE activities.activities DISABLE TRIGGER activities_append_only"))
        conn.execute(text("DELETE FROM activities.activities WHERE id = :i"), {"i": ids[1]})
        conn.execute(text("ALTER TABLE activities.activities ENABLE TRIGGER activities_append_only"))
    result = admin.verify_chain(ACC1[1])
    assert result["ok"] is False and result["broken_seq"] == 2


# --- promises ------------------------------------------------------------------------------

def promise_state(engine, promise_id):
    return sql(engine, "SELECT state, paid_amount FROM activities.promises WHERE id = :p",
               p=promise_id)[0]


def test_a_promise_plan_is_kept_by_payment_events_through_the_broker(gestor1, engine,
                                                                      rabbit_config):
    day = today()
    logged = gestor1.log_activity(call(code="PP", promise={"instalments": [
        {"due_date": day.isoformat(), "amount": "100.00"},
        {"due_date": (day + timedelta(days=7)).isoformat(), "amount": "200.50"}]}))
    promise = logged["promise"]
    assert promise["amount"] == "300.50" and promise["state"] == "pending"
    assert [i["amount"] for i in promise["instalments"]] == ["100.00", "200.50"]
    (made,) = outbox(engine, "promise_made")
    assert made["promise_id"] == promise["id"] and made["instalments"] == 2
    assert logged["details"]["promise"]["amount"] == "300.50"  # hashed with the entry

    dispatch = event_dispatcher(rabbit_config)
    first = payment(ACC1[0], "100.00", day, 1)
    dispatch("portfolio", "payment_received", first)
    assert wait_for(lambda: promise_state(engine, promise["id"]) == ("pending", Decimal("100.00")))
    dispatch("portfolio", "payment_received", first)               # redelivered: once only
    dispatch("portfolio", "payment_received", {**first, "event_id": str(uuid.uuid4())})  # same movement
    dispatch("portfolio", "payment_received", payment(ACC1[0], "250.00", day, 2))
    assert wait_for(lambda: promise_state(engine, promise["id"]) == ("kept", Decimal("300.50")))
    assert wait_for(lambda: len(outbox(engine, "promise_kept")) == 1)
    (kept,) = outbox(engine, "promise_kept")
    assert kept["promise_id"] == promise["id"] and kept["paid_amount"] == "300.50"
    assert scalar(engine, "SELECT count(*) FROM activities.payments") == 2
    row = sql(engine, "SELECT promises_kept, kept_amount, amount_recovered "
                      "FROM activities.productivity_daily WHERE agent_id = :a", a=GESTOR1)
    assert row == [(1, Decimal("300.50"), Decimal("350.00"))]
    assert gestor1.account_promises(ACC1[0])[0]["state"] == "kept"


@pytest.fixture
def statements():
    """Every SQL statement any engine of this process runs while the test does."""
    seen = []

    def note(conn, cursor, statement, *_):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    yield seen
    event.remove(Engine, "before_cursor_execute", note)


def test_a_promise_is_counted_with_its_entry_in_one_upsert_and_nothing_is_read_back(
        gestor1, engine, statements):
    """The entry's and its promise's rollup increments go to the same row in one upsert;
    the instalments are described from what their insert returned (as stored: cents)."""
    day = today()
    statements.clear()
    logged = gestor1.log_activity(call(code="PP", promise={"instalments": [
        {"due_date": day.isoformat(), "amount": "100"},
        {"due_date": (day + timedelta(days=7)).isoformat(), "amount": "200.5"}]}))
    rollup = [s for s in statements if "productivity_daily" in s]
    instalments = [s for s in statements if "promise_instalments" in s]
    assert len(rollup) == 1 and rollup[0].lstrip().upper().startswith("INSERT")
    assert len(instalments) == 1 and instalments[0].lstrip().upper().startswith("INSERT")
    assert [(i["number"], i["amount"], i["paid_amount"]) for i in logged["promise"]["instalments"]
            ] == [(1, "100.00", "0.00"), (2, "200.50", "0.00")]
    assert gestor1.get_activity(logged["id"])["promise"] == logged["promise"]
    # the entry's event names its promise, so the queues take both in one transaction
    (entry,), (made,) = outbox(engine, "activity_logged"), outbox(engine, "promise_made")
    assert entry["promise_id"] == made["promise_id"] == logged["promise"]["id"]
    assert made["with_entry"] is True
    assert sql(engine, "SELECT calls, contacts, promises_made, promised_amount "
                       "FROM activities.productivity_daily WHERE agent_id = :a", a=GESTOR1) \
        == [(1, 1, 1, Decimal("300.50"))]


def test_expire_breaks_promises_past_due_and_only_once(gestor1, admin, engine, rabbit_config):
    day = today()
    broken = gestor1.log_activity(call(code="PP", promise={"amount": "800.00",
                                                           "due_date": day.isoformat()}))
    partly = gestor1.log_activity(call(account_id=ACC1[1], code="PP", promise={
        "amount": "500.00", "due_date": day.isoformat()}))
    later = gestor1.log_activity(call(account_id=ACC1[2], code="PP", promise={
        "amount": "500.00", "due_date": (day + timedelta(days=3)).isoformat()}))
    event_dispatcher(rabbit_config)("portfolio", "payment_received",
                                    payment(ACC1[1], "120.00", day, 10))
    assert wait_for(lambda: promise_state(engine, partly["promise"]["id"])[1] == Decimal("120.00"))

    assert admin.expire_promises(day.isoformat()) == {"settled": 0}    # due today: not yet
    assert admin.expire_promises() == {"settled": 0}                  # each institution's today
    assert admin.expire_promises((day + timedelta(days=1)).isoformat()) == {"settled": 2}
    assert promise_state(engine, broken["promise"]["id"]) == ("broken", Decimal("0.00"))
    assert promise_state(engine, partly["promise"]["id"]) == ("partly_kept", Decimal("120.00"))
    assert promise_state(engine, later["promise"]["id"])[0] == "pending"
    assert admin.expire_promises((day + timedelta(days=1)).isoformat()) == {"settled": 0}
    events = {e["promise_id"]: e for e in outbox(engine, "promise_broken")}
    assert events[broken["promise"]["id"]]["state"] == "broken"
    assert events[partly["promise"]["id"]]["state"] == "partly_kept"
    assert len(events) == 2
    with pytest.raises(PermissionDenied):
        gestor1.expire_promises()


@pytest.mark.instances(2)
def test_the_hourly_expiry_fired_on_two_instances_at_once_settles_each_promise_once(
        gestor1, engine, instances, monkeypatch):
    from activities import promises

    day = today()
    made = [gestor1.log_activity(call(account_id=account, code="PP", promise={
        "amount": "300.00", "due_date": day.isoformat()}))["promise"]["id"] for account in ACC1]
    sql(engine, "UPDATE activities.promises SET due_date = :d WHERE id = ANY(:p)",
        d=day - timedelta(days=1), p=made)
    sql(engine, "UPDATE activities.promise_instalments SET due_date = :d "
                "WHERE promise_id = ANY(:p)", d=day - timedelta(days=1), p=made)
    settled = counting(monkeypatch, promises, "expire")
    fire_together(instances["activities"], "expire_promises_daily")
    record("timer_promise_expiry", {"instances_fired": 2, "overdue_promises": len(made),
                                    "settled_per_call": settled,
                                    "promise_broken_events": len(outbox(engine, "promise_broken"))})
    assert sum(settled) == len(made)
    assert len(outbox(engine, "promise_broken")) == len(made)
    assert scalar(engine, "SELECT sum(promises_broken) FROM activities.productivity_daily") \
        == len(made)


# --- disputes --------------------------------------------------------------------------------

def test_the_dispute_lifecycle(gestor1, supervisor, admin, engine):
    opened = gestor1.open_dispute({"account_id": ACC1[0], "reason": "Cargo no reconocido",
                                   "evidence": "Estado de cuenta de marzo"})
    assert opened["state"] == "open" and opened["owner_id"] == GESTOR1
    assert opened["due_date"] == (today() + timedelta(days=10)).isoformat()
    with pytest.raises(Conflict):
        gestor1.open_dispute({"account_id": ACC1[0], "reason": "Otra"})
    with pytest.raises(PermissionDenied):
        gestor1.resolve_dispute(opened["id"], {"outcome": "cancelled", "note": "x"})
    with pytest.raises(InvalidInput):
        supervisor.resolve_dispute(opened["id"], {"outcome": "corrected_balance", "note": "x"})
    assert supervisor.overdue_disputes()["total"] == 0
    sql(engine, "UPDATE activities.disputes SET due_date = current_date - 3 WHERE id = :i",
        i=opened["id"])
    overdue = supervisor.overdue_disputes({"institution_id": 1})
    assert [d["id"] for d in overdue["items"]] == [opened["id"]]

    resolved = supervisor.resolve_dispute(opened["id"], {
        "outcome": "corrected_balance", "note": "Se reversó el cargo", "corrected_balance": "4200.00"})
    assert resolved["state"] == "resolved" and resolved["corrected_balance"] == "4200.00"
    before = counts(engine)
    with pytest.raises(Conflict):
        supervisor.resolve_dispute(opened["id"], {"outcome": "cancelled", "note": "otra vez"})
    assert counts(engine) == before
    assert [e["dispute_id"] for e in outbox(engine, "dispute_opened")] == [opened["id"]]
    (done,) = outbox(engine, "dispute_resolved")
    assert done["outcome"] == "corrected_balance" and done["corrected_balance"] == "4200.00"
    assert gestor1.account_disputes(ACC1[0])[0]["state"] == "resolved"
    assert supervisor.overdue_disputes()["total"] == 0
    # the SLA is the institution's setting (an admin's): it dates the next dispute
    with pytest.raises(PermissionDenied):
        supervisor.save_settings(1, {"dispute_sla_days": 5, "attribution_days": 15})
    admin.save_settings(1, {"dispute_sla_days": 3, "attribution_days": 15})
    second = gestor1.open_dispute({"account_id": ACC1[0], "reason": "Pago no aplicado"})
    assert second["due_date"] == (today() + timedelta(days=3)).isoformat()


# --- the agenda -------------------------------------------------------------------------------

def test_callbacks_delegation_calendar_views_and_the_ics_feed(gestor1, as_user, supervisor,
                                                              engine, rabbit_config, rpc_proxy):
    dispatch = event_dispatcher(rabbit_config)
    dispatch("auth", "team_changed", contracts.TeamChanged().dump({
        "event_id": uuid.uuid4(), "occurred_at": now(), "team_id": TEAM, "name": "Equipo Centro",
        "supervisor_id": SUPERVISOR, "members": [GESTOR1, GESTOR3]}))
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM activities.team_members") == 2)

    at = (now() + timedelta(hours=2)).replace(microsecond=0)
    logged = gestor1.log_activity(call(code="LLM", callback_at=at.isoformat(),
                                       callback_note="Marcar después de las 5; trae, datos"))
    item_id = logged["agenda_item_id"]
    assert item_id is not None
    (scheduled,) = outbox(engine, "callback_scheduled")
    assert scheduled["agent_id"] == GESTOR1 and scheduled["item_id"] == item_id

    span = {"date_from": (today() - timedelta(days=1)).isoformat(),
            "date_to": (today() + timedelta(days=7)).isoformat()}
    assert [i["id"] for i in gestor1.agenda_for(span)] == [item_id]
    team_item = gestor1.schedule_callback({"account_id": ACC1[1], "kind": "visit",
                                           "due_at": (at + timedelta(days=1)).isoformat(),
                                           "team_id": TEAM})
    with pytest.raises(InvalidInput):                   # not a colleague
        gestor1.schedule_callback({"account_id": ACC1[1], "due_at": at.isoformat(),
                                   "agent_id": 4242})
    gestor3 = as_user(GESTOR3)
    assert [i["id"] for i in gestor3.agenda_for(span)] == [team_item["id"]]
    moved = gestor1.delegate_agenda_item(item_id, {"agent_id": GESTOR3})
    assert moved["agent_id"] == GESTOR3
    assert {i["id"] for i in gestor3.agenda_for(span)} == {item_id, team_item["id"]}
    assert {i["id"] for i in supervisor.agenda_for({**span, "team_id": TEAM})} == \
        {item_id, team_item["id"]}
    with pytest.raises(PermissionDenied):
        gestor1.agenda_for({**span, "agent_id": GESTOR3})

    token = gestor3.create_ics_token()["token"]
    feed = rpc_proxy().activities.ics_feed(token)       # a calendar app: no identity
    assert feed.startswith("BEGIN:VCALENDAR\r\n") and feed.endswith("END:VCALENDAR\r\n")
    assert feed.count("BEGIN:VEVENT") == 2
    assert f"UID:agenda-{item_id}@recaudo" in feed
    assert "Marcar después de las 5\\; trae\\, datos" in feed.replace("\r\n ", "")
    assert all(len(line.encode()) <= 75 for line in feed.split("\r\n"))

    done = gestor3.mark_agenda_done(item_id)
    assert done["done_by"] == GESTOR3
    with pytest.raises(Conflict):
        gestor3.mark_agenda_done(item_id)
    assert rpc_proxy().activities.ics_feed(token).count("BEGIN:VEVENT") == 1
    gestor3.create_ics_token()                          # rotating kills the old token
    with pytest.raises(NotFound):
        rpc_proxy().activities.ics_feed(token)


def test_a_retried_scheduling_with_the_same_key_is_stored_once(gestor1, engine):
    """An app that lost the answer sends the same Idempotency-Key: the first item answers."""
    at = (now() + timedelta(hours=3)).replace(microsecond=0)
    item = {"account_id": ACC1[2], "due_at": at.isoformat(), "idempotency_key": "agenda-1"}
    first = gestor1.schedule_callback(item)
    again = gestor1.schedule_callback({**item, "note": "reintento"})
    assert again["id"] == first["id"] and again["note"] == first["note"]
    other = gestor1.schedule_callback({**item, "idempotency_key": "agenda-2"})
    assert other["id"] != first["id"]
    assert scalar(engine, "SELECT count(*) FROM activities.agenda_items WHERE account_id = :a "
                          "AND due_at = :d", a=ACC1[2], d=at) == 2


# --- productivity ------------------------------------------------------------------------------

RECOMPUTE = """
WITH s AS (SELECT coalesce((SELECT time_zone FROM activities.institution_settings
                            WHERE institution_id = 1), 'America/Mexico_City') AS tz),
effective AS (   -- what the log says now: entries nobody corrected
    SELECT a.* FROM activities.activities a
    WHERE NOT EXISTS (SELECT 1 FROM activities.activities c WHERE c.corrects_id = a.id)),
entries AS (
    SELECT date(timezone((SELECT tz FROM s), started_at)) AS day, agent_id, institution_id,
           coalesce(queue_id, 0) AS queue_id,
           count(*) FILTER (WHERE kind = 'call') AS calls,
           count(*) FILTER (WHERE kind = 'visit') AS visits,
           count(*) FILTER (WHERE kind = 'email') AS emails,
           count(*) FILTER (WHERE kind = 'fax') AS faxes,
           count(*) FILTER (WHERE kind = 'sms') AS sms,
           count(*) FILTER (WHERE kind = 'letter') AS letters,
           count(*) FILTER (WHERE kind = 'note') AS notes,
           count(*) FILTER (WHERE contact_made) AS contacts
    FROM effective GROUP BY 1, 2, 3, 4),
made AS (
    SELECT made_on AS day, agent_id, institution_id, coalesce(queue_id, 0) AS queue_id,
           count(*) AS promises_made, sum(amount) AS promised_amount
    FROM activities.promises GROUP BY 1, 2, 3, 4),
kept AS (
    SELECT settled_on AS day, agent_id, institution_id, coalesce(queue_id, 0) AS queue_id,
           count(*) AS promises_kept, sum(amount) AS kept_amount
    FROM activities.promises WHERE state = 'kept' GROUP BY 1, 2, 3, 4),
broken AS (
    SELECT settled_on AS day, agent_id, institution_id, coalesce(queue_id, 0) AS queue_id,
           count(*) AS promises_broken
    FROM activities.promises WHERE state IN ('broken', 'partly_kept') GROUP BY 1, 2, 3, 4),
credited AS (    -- each payment to the last agent who worked the account in the window
    SELECT p.value_date AS day, w.agent_id, p.institution_id, coalesce(w.queue_id, 0) AS queue_id,
           sum(p.amount) AS amount_recovered
    FROM activities.payments p
    CROSS JOIN LATERAL (
        SELECT a.agent_id, a.queue_id FROM activities.activities a
        WHERE a.account_id = p.account_id AND a.kind <> 'note'
          AND date(timezone((SELECT tz FROM s), a.started_at)) BETWEEN p.value_date - 30 AND p.value_date
        ORDER BY a.started_at DESC, a.id DESC LIMIT 1) w
    GROUP BY 1, 2, 3, 4),
keys AS (SELECT day, agent_id, institution_id, queue_id FROM entries UNION
         SELECT day, agent_id, institution_id, queue_id FROM made UNION
         SELECT day, agent_id, institution_id, queue_id FROM kept UNION
         SELECT day, agent_id, institution_id, queue_id FROM broken UNION
         SELECT day, agent_id, institution_id, queue_id FROM credited)
SELECT k.day, k.agent_id, k.institution_id, k.queue_id,
       coalesce(e.calls, 0), coalesce(e.visits, 0), coalesce(e.emails, 0), coalesce(e.faxes, 0),
       coalesce(e.sms, 0), coalesce(e.letters, 0), coalesce(e.notes, 0), coalesce(e.contacts, 0),
       coalesce(m.promises_made, 0), coalesce(m.promised_amount, 0),
       coalesce(kp.promises_kept, 0), coalesce(kp.kept_amount, 0),
       coalesce(b.promises_broken, 0), coalesce(c.amount_recovered, 0)
FROM keys k
LEFT JOIN entries e USING (day, agent_id, institution_id, queue_id)
LEFT JOIN made m USING (day, agent_id, institution_id, queue_id)
LEFT JOIN kept kp USING (day, agent_id, institution_id, queue_id)
LEFT JOIN broken b USING (day, agent_id, institution_id, queue_id)
LEFT JOIN credited c USING (day, agent_id, institution_id, queue_id)
"""

ROLLUP = """
SELECT day, agent_id, institution_id, queue_id, calls, visits, emails, faxes, sms, letters,
       notes, contacts, promises_made, promised_amount, promises_kept, kept_amount,
       promises_broken, amount_recovered
FROM activities.productivity_daily
WHERE (calls, visits, emails, faxes, sms, letters, notes, contacts, promises_made,
       promises_kept, promises_broken) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
   OR promised_amount <> 0 OR kept_amount <> 0 OR amount_recovered <> 0
"""


def test_rollups_equal_a_recomputation_from_the_raw_log(as_user, supervisor, admin, engine,
                                                        rabbit_config):
    gestor1, gestor3 = as_user(GESTOR1), as_user(GESTOR3, SUPERVISOR_PERMS - {"reports.view"})
    day = today()
    kinds = ["call", "visit", "email", "sms", "letter", "fax", "note"]
    logged = []
    for k in range(21):
        agent = gestor1 if k % 3 else gestor3
        kind = kinds[k % len(kinds)]
        code = None if kind == "note" else ("PP" if k % 5 == 0 else ("CT" if k % 2 else "NC"))
        extra = {"queue_id": 40 + k % 2} if k % 4 else {}
        if code == "PP":
            extra["promise"] = {"amount": f"{100 + k}.25", "due_date": (day if k % 2 else day
                                + timedelta(days=5)).isoformat()}
        data = call(account_id=ACC1[k % 4], code=code, minutes_ago=200 - k, **extra)
        data["kind"] = kind
        if kind == "note":
            data.pop("result_code")
        logged.append(agent.log_activity(data))
    # corrections move counts between kinds and contact flags
    supervisor.correct_activity(logged[1]["id"], {"kind": "visit", "result_code": "NC",
                                                  "started_at": logged[1]["started_at"]})
    gestor1.correct_activity(logged[2]["id"], {"kind": "call", "result_code": "CT",
                                               "started_at": logged[2]["started_at"]})
    dispatch = event_dispatcher(rabbit_config)
    for n, (account, amount) in enumerate([(ACC1[0], "400.00"), (ACC1[1], "50.10"),
                                           (ACC1[5], "75.00")], start=100):
        dispatch("portfolio", "payment_received", payment(account, amount, day, n))
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM activities.payments") == 3)
    admin.expire_promises((day + timedelta(days=1)).isoformat())

    rollup = sorted(sql(engine, ROLLUP))
    assert rollup == sorted(sql(engine, RECOMPUTE))
    assert sum(r[4] for r in rollup) > 0 and sum(r[14] for r in rollup) + sum(r[16] for r in rollup) > 0

    # the entries started up to 200 minutes ago: yesterday too, shortly after midnight
    span = {"date_from": (day - timedelta(days=1)).isoformat(), "date_to": day.isoformat()}
    report = supervisor.productivity({**span, "group_by": ["agent"]})
    by_agent = {r["agent_id"]: r for r in report["rows"]}
    assert set(by_agent) == {GESTOR1, GESTOR3}
    assert report["totals"]["activities"] == 21
    assert report["totals"]["promises_made"] == sum(1 for a in logged if a["promise"]) == 4
    # a collector without reports.view sees only their own rows
    own = gestor1.productivity(span)
    assert [r["agent_id"] for r in own["rows"]] == [GESTOR1]


# --- catalogue and seed -------------------------------------------------------------------------

def test_the_demo_seed_gives_each_institution_its_catalogue_idempotently(services, admin, engine):
    seed.seed_demo()
    sql(engine, "UPDATE activities.result_codes SET label = 'Editado' "
                "WHERE institution_id = 1 AND code = 'NC'")
    seed.seed_demo()
    per_institution = dict(sql(engine, "SELECT institution_id, count(*) "
                                       "FROM activities.result_codes GROUP BY 1"))
    assert per_institution == {i: len(catalogue.DEFAULT_CODES) for i, _, _ in demo.INSTITUTIONS}
    codes = {c["code"]: c for c in admin.list_result_codes(1)}
    assert codes["NC"]["label"] == "Editado" and codes["PP"]["needs_promise"]
    assert codes["NEQ"]["invalidates_phone"] and codes["LLM"]["schedules_callback"]
    saved = admin.save_result_code({"institution_id": 1, "code": "PROMESA_WA",
                                    "label": "Promesa por WhatsApp", "needs_promise": True,
                                    "contact_made": True})
    assert saved["id"] in {c["id"] for c in admin.list_result_codes(1)}
    with pytest.raises(Conflict):
        admin.save_result_code({"institution_id": 1, "code": "PROMESA_WA", "label": "otra"})
    assert admin.save_settings(1, {"dispute_sla_days": 5, "attribution_days": 15})[
        "dispute_sla_days"] == 5


def test_a_code_added_meanwhile_is_answered_as_the_same_conflict(services, admin, engine):
    """Messaging adds its codes the first time it needs them, from several workers at
    once: a row added after the service's check (here: inserted, not yet committed, by
    another transaction) is caught by the unique key - answered as the same Conflict,
    never a crash (a messaging handler that got the raw IntegrityError dropped the
    agreement it was sending)."""
    try:
        with engine.connect() as other:
            other.execute(text(
                "INSERT INTO activities.result_codes (institution_id, code, label, "
                "contact_made, needs_promise, invalidates_phone, schedules_callback, active, "
                "sort_order) VALUES (1, 'CARRERA', 'Carrera', false, false, false, false, "
                "true, 900)"))
            reply = admin.save_result_code.call_async({
                "institution_id": 1, "code": "CARRERA", "label": "Carrera"})
            eventlet.sleep(1.0)   # the service's insert now waits on the unique key
            other.commit()
        with pytest.raises(Conflict) as refused:
            reply.result()
        assert refused.value.fields == {"code": ["Ya existe en esta institución"]}
    finally:
        sql(engine, "DELETE FROM activities.result_codes WHERE code = 'CARRERA'")


def test_a_wrong_number_result_invalidates_the_phone_in_the_portfolio(gestor1, engine):
    """activity_logged travels through the broker to the portfolio service, which marks
    the phone used invalid when the result code says so (and only that phone)."""
    debtor = ACC1[0]
    sql(engine, "INSERT INTO portfolio.phones (debtor_id, number, priority) VALUES "
                "(:d, '5512345678', 1), (:d, '5587654321', 2)", d=debtor)
    try:
        gestor1.log_activity(call(code="NEQ", phone="55 1234 5678"))
        assert wait_for(lambda: not scalar(
            engine, "SELECT valid FROM portfolio.phones WHERE debtor_id = :d "
                    "AND number = '5512345678'", d=debtor))
        assert scalar(engine, "SELECT valid FROM portfolio.phones WHERE debtor_id = :d "
                              "AND number = '5587654321'", d=debtor)
    finally:
        sql(engine, "DELETE FROM portfolio.phones WHERE debtor_id = :d", d=debtor)


def test_a_promise_is_kept_by_a_real_payments_import(gestor1, engine, rabbit_config, s3_server,
                                                     tmp_path):
    """The whole path: a call with a promise, then a payments file imported by the
    portfolio service's import (S3, COPY, merge), whose very ``payment_received`` event
    goes through the broker to the activities service, which marks the promise kept."""
    from portfolio import import_run

    day = today()
    logged = gestor1.log_activity(call(code="PP", promise={"amount": "400.00",
                                                           "due_date": day.isoformat()}))
    reference = f"PAGO-{uuid.uuid4().hex[:12]}"
    layout_id = scalar(engine, """
        INSERT INTO portfolio.import_layouts (institution_id, name, kind, columns, required)
        VALUES (1, :name, 'payments', CAST(:columns AS jsonb), CAST(:required AS jsonb))
        RETURNING id""", name=f"Pagos {reference}", columns=(
        '{"account_number": "CUENTA", "amount": "IMPORTE", "value_date": "FECHA", '
        '"reference": "REFERENCIA"}'),
        required='["account_number", "amount", "reference", "value_date"]')
    paid = tmp_path / "pagos.csv"
    paid.write_text(f"CUENTA,IMPORTE,FECHA,REFERENCIA\nAT{ACC1[0]},400.00,{day},{reference}\n",
                    encoding="utf-8")
    try:
        job = import_run.import_file(paid, layout_id, ADMIN)
        assert job.state == "done" and job.imported_rows == 1, job.message
        (event,) = sql(engine, """
            UPDATE portfolio.outbox SET published_at = now()
            WHERE event_type = 'payment_received' AND payload->>'reference' = :r
            RETURNING payload""", r=reference)
        event_dispatcher(rabbit_config)("portfolio", "payment_received", event[0])
        assert wait_for(lambda: promise_state(engine, logged["promise"]["id"])
                        == ("kept", Decimal("400.00")))
        assert scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a",
                      a=ACC1[0]) == Decimal("4600.00")
    finally:
        # the import's other events (accounts_changed, ...) are about a throwaway account:
        # taken out of the way of the relay of a later stack on this database
        sql(engine, "UPDATE portfolio.outbox SET published_at = now() WHERE published_at IS NULL "
                    "AND payload::text LIKE :a", a=f"%{ACC1[0]}%")
        sql(engine, "DELETE FROM portfolio.movements WHERE account_id = :a", a=ACC1[0])
        sql(engine, "UPDATE portfolio.accounts SET balance = 5000 WHERE id = :a", a=ACC1[0])
        sql(engine, "DELETE FROM portfolio.import_jobs WHERE layout_id = :l", l=layout_id)
        sql(engine, "DELETE FROM portfolio.import_layouts WHERE id = :l", l=layout_id)


def test_a_callback_delegated_to_a_colleague_opens_the_account_to_them(
        gestor1, as_user, supervisor, engine, rpc_proxy):
    """Issue 18: the delegate got 404 opening the debtor (the account stays assigned to
    the first collector). A pending callback on your agenda lets you read and work its
    account until it is done; then the account is out of reach again."""
    gestor3_portfolio = rpc_proxy(signed(GESTOR3, GESTOR_PERMS)).portfolio
    with pytest.raises(NotFound):                       # not theirs: as if missing
        gestor3_portfolio.get_debtor(ACC1[0])
    at = (now() + timedelta(hours=3)).replace(microsecond=0)
    item = gestor1.log_activity(call(code="LLM", callback_at=at.isoformat()))["agenda_item_id"]
    supervisor.delegate_agenda_item(item, {"agent_id": GESTOR3})

    def opens():
        try:
            return gestor3_portfolio.get_debtor(ACC1[0])
        except NotFound:
            return None
    assert wait_for(opens), "the delegate still cannot open the debtor"
    assert [a["account"]["id"] for a in opens()["accounts"]] == [ACC1[0]]
    gestor3 = as_user(GESTOR3)
    logged = gestor3.log_activity(call(code="CT"))      # works it, as the agenda asks
    assert logged["agent_id"] == GESTOR3
    with pytest.raises(NotFound):                       # nothing else of gestor1's
        gestor3_portfolio.get_debtor(ACC1[1])
    assert gestor1.log_activity(call(code="CT"))        # the first collector keeps it

    gestor3.mark_agenda_done(item)
    assert wait_for(lambda: opens() is None), "the callback done still opens the account"


# --- contact compliance (issue 24): the US policy over the debt's logged calls --------------

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def us_debt(engine):
    """Institution 1 under the US policy, with two debts (accounts) of debtors in New York;
    put back after. ``at(days_ago, hour)`` is a call started then (New York time)."""
    debts = ACC1[2], ACC1[3]
    sql(engine, "UPDATE portfolio.institutions SET jurisdiction = 'US' WHERE id = 1")
    sql(engine, "UPDATE portfolio.debtors SET time_zone = 'America/New_York' WHERE id = ANY(:d)",
        d=list(debts))

    def at(days_ago: int, hour: int = 12, account_id=debts[0], code="NC", **extra) -> dict:
        day = datetime.now(NEW_YORK).date() - timedelta(days=days_ago)
        start = datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK) + timedelta(hours=hour)
        start = start.astimezone(timezone.utc)
        return {**call(account_id=account_id, code=code, **extra),
                "started_at": start.isoformat(),
                "ended_at": (start + timedelta(minutes=2)).isoformat()}
    try:
        yield at
    finally:
        sql(engine, "UPDATE portfolio.institutions SET jurisdiction = 'ZZ' WHERE id = 1")
        sql(engine, "DELETE FROM activities.contact_policies WHERE created_by IS NOT NULL")
        sql(engine, "UPDATE portfolio.debtors SET time_zone = :z WHERE id = ANY(:d)", z=ZONE,
            d=list(debts))


def test_us_7_in_7_counts_the_debts_call_attempts_across_agents(gestor1, supervisor, admin,
                                                                 engine, us_debt):
    # seven attempts in the last week, by two agents, none reaching the debtor
    for days_ago, hour, agent in ((6, 9, gestor1), (6, 15, supervisor), (5, 10, gestor1),
                                  (4, 11, supervisor), (3, 12, gestor1), (2, 13, supervisor),
                                  (2, 16, gestor1)):
        agent.log_activity(us_debt(days_ago, hour))
    # the queues are told the debt is held since the seventh attempt (the pull skips it)
    holds = [p["hold_until"] for p in outbox(engine, "contact_hold_changed")
             if p["account_id"] == ACC1[2]]
    assert holds[:6] == [None] * 6 and holds[6] is not None
    with pytest.raises(Conflict) as err:
        supervisor.log_activity(us_debt(1, 12))
    assert err.value.fields["rule"] == ["call_frequency"]
    assert err.value.fields["policy_version"] == ["US-1"]
    assert "7 intentos" in err.value.fields["reason"][0]
    # per debt: the other debt may be called
    assert gestor1.log_activity(us_debt(1, 12, account_id=ACC1[3]))["seq"] == 1
    # an override needs a justification and is kept, in the entry and in the log
    logged = admin.log_activity(us_debt(1, 13, override=JUSTIFIED))
    assert "7 intentos" in logged["details"]["compliance_override"]
    log = admin.compliance_log({"account_id": ACC1[2]})
    assert [(e["decision"], e["rule"], e["policy_version"], e["username"], e["channel"])
            for e in log["items"]] == [
        ("overridden", "call_frequency", "US-1", "user8899", "call"),
        ("refused", "call_frequency", "US-1", f"user{SUPERVISOR}", "call")]
    assert log["items"][0]["justification"] == JUSTIFIED["justification"]
    # the log is append-only
    with pytest.raises(Exception, match="append-only"):
        sql(engine, "DELETE FROM activities.compliance_log")
    csv_text = admin.compliance_log_csv({"decision": "refused"})
    assert csv_text.splitlines()[0].startswith("at,username,channel")
    assert "call_frequency" in csv_text.splitlines()[1]


def test_us_a_conversation_bars_the_next_7_days_unless_the_debtor_consents(
        gestor1, admin, engine, us_debt):
    gestor1.log_activity(us_debt(3, code="CT"))           # a telephone conversation
    with pytest.raises(Conflict) as err:
        gestor1.log_activity(us_debt(1))
    assert err.value.fields["rule"] == ["call_frequency"]
    assert "conversación" in err.value.fields["reason"][0]
    # the debtor's prior consent to be called excludes the call
    day = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
    gestor1.save_debtor_preferences(ACC1[2], {"consent": {"call": {
        "given_at": day, "source": "llamada entrante"}}})
    assert gestor1.log_activity(us_debt(1))["seq"] == 2


def test_us_cease_and_attorney_stop_contact_and_the_360_view_shows_why(gestor1, us_debt):
    gestor1.save_debtor_preferences(ACC1[2], {"cease_at": datetime.now(timezone.utc).isoformat()})
    with pytest.raises(Conflict) as err:
        gestor1.log_activity(us_debt(1))
    assert err.value.fields["rule"] == ["cease_communication"]
    gestor1.save_debtor_preferences(ACC1[2], {"cease_at": None,
                                              "attorney": {"name": "Lic. Ruiz"}})
    with pytest.raises(Conflict) as err:
        gestor1.log_activity(us_debt(1))
    assert err.value.fields["rule"] == ["attorney"]
    seen = gestor1.debtor_compliance(ACC1[2])
    assert seen["preferences"]["attorney"] == {"name": "Lic. Ruiz", "contact": ""}
    assert [e["rule"] for e in seen["log"]] == ["attorney", "cease_communication"]
    # another institution's debtor answers like a missing one
    with pytest.raises(NotFound):
        gestor1.debtor_compliance(ACC2)
    with pytest.raises(PermissionDenied):
        gestor1.compliance_log({})


def test_a_compliance_officer_writes_a_new_version_in_force_from_its_date(admin, gestor1,
                                                                        us_debt):
    versions = admin.list_contact_policies("US")
    assert [v["version"] for v in versions] == [1]
    with pytest.raises(InvalidInput) as err:
        admin.save_contact_policy("US", {"effective_from": "2020-01-01T00:00:00+00:00",
                                         "rules": [{"rule": "no_such_rule"}]})
    assert "rules" in err.value.fields
    written = admin.save_contact_policy("US", {
        "effective_from": (datetime.now(timezone.utc) - timedelta(days=3)).isoformat(),
        "rules": [{"rule": "call_frequency", "attempts": 1, "days": 7}], "note": "Más estricta"})
    assert (written["version"], written["created_by"]) == (2, ADMIN)
    gestor1.log_activity(us_debt(2))
    with pytest.raises(Conflict) as err:
        gestor1.log_activity(us_debt(1))
    assert err.value.fields["policy_version"] == ["US-2"]
    with pytest.raises(PermissionDenied):
        gestor1.save_contact_policy("US", {"effective_from": "2020-01-01T00:00:00+00:00",
                                           "rules": [{"rule": "window"}]})


def test_the_latest_news_of_a_callback_wins_whatever_order_it_arrives_in(
        services, engine, rabbit_config, rpc_proxy):
    """The portfolio's projection of who holds a callback: a ``callback_done`` overtaken
    by the older ``callback_scheduled`` of the same item leaves it done (nothing opened)."""
    dispatch = event_dispatcher(rabbit_config)
    gestor3_portfolio = rpc_proxy(signed(GESTOR3, GESTOR_PERMS)).portfolio
    item = 777

    def news(event_type, at, **extra) -> str:
        event_id = uuid.uuid4()
        dispatch("activities", event_type, contracts.EVENTS[("activities", event_type)]().dump({
            "event_id": event_id, "occurred_at": at, "item_id": item,
            "account_id": ACC1[4], "institution_id": 1, **extra}))
        return str(event_id)

    done = news("callback_done", now())
    older = news("callback_scheduled", now() - timedelta(seconds=5), kind="callback",
                 due_at=now() + timedelta(hours=1), agent_id=GESTOR3, team_id=None)
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM portfolio.processed_events "
                                           "WHERE CAST(event_id AS text) IN (:a, :b)",
                                   a=done, b=older) == 2)
    assert sql(engine, "SELECT done, agent_id FROM portfolio.callback_holders WHERE item_id = :i",
               i=item) == [(True, None)]
    with pytest.raises(NotFound):
        gestor3_portfolio.get_debtor(ACC1[4])
