"""Contact compliance under load, against the running stack (``make bench``; issue 24):

(a) the next-account pull with the call-frequency rule on versus off, in the same run:
    100 agents pull from one shared queue of ``ACCOUNTS`` accounts (institution 9024)
    through standalone RPC proxies (``queues.next_account``, as in test_bench_queues),
    closed loop, each pull finished untimed. "Off": no account held (a policy without the
    rule: activities announces no hold). "On": the holds the US rule (more than 7 call
    attempts in 7 days, or a conversation in the last 7 days) gives over ``ACTIVITIES``
    synthetic calls of the last 7 days (a scratch table, skewed so some debts are called
    much more than others, one call in ten a conversation), computed in SQL and checked
    against the engine (``contact_policy.hold_until``) on a sample, then written as the
    ``contact_hold_changed`` handler does (the facts' hold, the assignment resting). The
    phases alternate off/on twice; the ratio on/off of pulls/s is printed (goal >= 0.8).

    The issue's size is 1,000,000 accounts with 5,000,000 calls in the last 7 days:
    ``RECAUDO_BENCH_POLICY_ACCOUNTS=1000000 RECAUDO_BENCH_POLICY_ACTIVITIES=5000000``.
    The default (100,000 and 500,000) runs in a few minutes on this machine.

(b) SMS handed to Kannel from a campaign of ``SMS_MESSAGES`` (default 10,000): the
    messages queued at once (as a campaign's sends leave them), timed until messaging's
    delivery timer has handed every one to the stack's Kannel (sendsms, fakesmsc behind
    it) - messages/s, goal >= 200/s - and until their delivery reports came back; the
    baseline is Kannel's sendsms driven directly from here with the same code
    (``messaging.sms.send``) at the same concurrency (20), for a tenth of the messages.
    ``RECAUDO_BENCH_SMS_BEFORE=/path/to/another/checkout`` (e.g. main's) first runs a
    campaign with that checkout's messaging in the stack's place: before and after in the
    same run.

Nothing here asserts on time; run with ``-s`` to see the tables. Everything created is
removed at the end. The machine is 2 CPUs shared by the clients, the whole stack, and
(often) other people's work: figures are indicative, the ratios more than the absolutes.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy.engine import make_url

from messaging import crypto, kannel, sms
from recaudo_common import contact_policy
from recaudo_common.config import settings

from tests import stack

from .bench import Result, measure, print_table, vacuum
from .queues_world import FACTS_SQL, SUPERVISOR, q, run_agents, signed

ACCOUNTS = int(os.environ.get("RECAUDO_BENCH_POLICY_ACCOUNTS", "100000"))
ACTIVITIES = int(os.environ.get("RECAUDO_BENCH_POLICY_ACTIVITIES", str(5 * ACCOUNTS)))
SMS_MESSAGES = int(os.environ.get("RECAUDO_BENCH_SMS", "10000"))
INSTITUTION, SMS_INSTITUTION = 9024, 9025
BASE = 9_024_000_000
TEAM = 90240
AGENTS = tuple(range(902_401, 902_501))   # 100 collectors
PHASE_SECONDS = 10.0
SCRATCH = "bench_compliance_scratch"
RPC_TIMEOUT = 900.0
REPORTS_WAIT = 120.0
US_RULE = contact_policy.seeded_policy("US")


def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


@pytest.fixture(scope="module")
def db():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        yield conn


# --- (a) the pull, frequency rule on and off ------------------------------------------------

CALLS_SQL = f"""
CREATE TABLE {SCRATCH}.calls AS
SELECT %(base)s + 1 + floor(%(n)s * power(random(), 2))::bigint AS account_id,
       now() - random() * interval '167 hours' AS started_at,
       random() < 0.1 AS contact_made
FROM generate_series(1, %(calls)s)
"""
#: the US rule's hold per debt (``contact_policy.hold_until`` in SQL): the 7th most recent
#: attempt + 7 days when there are 7 or more, the latest conversation + 7 days
HOLDS_SQL = f"""
CREATE TABLE {SCRATCH}.holds AS
SELECT account_id, greatest(
         CASE WHEN count(*) >= 7 THEN (array_agg(started_at ORDER BY started_at DESC))[7]
                                      + interval '7 days' END,
         max(started_at) FILTER (WHERE contact_made) + interval '7 days') AS hold_until
FROM {SCRATCH}.calls GROUP BY account_id
HAVING count(*) >= 7 OR bool_or(contact_made)
"""


def cleanup(db) -> None:
    db.execute("DELETE FROM queues.leases l USING queues.assignments a "
               "WHERE a.account_id = l.account_id AND a.institution_id = %s", [INSTITUTION])
    db.execute("DELETE FROM queues.work_log w USING queues.queues q, queues.strategies s "
               "WHERE w.queue_id = q.id AND q.strategy_id = s.id AND s.institution_id = %s",
               [INSTITUTION])
    for table in ("assignments", "assigned_daily", "strategies", "account_facts",
                  "institution_rules"):
        db.execute(f"DELETE FROM queues.{table} WHERE institution_id = %s", [INSTITUTION])
    db.execute("DELETE FROM queues.team_members WHERE team_id = %s", [TEAM])
    db.execute("DELETE FROM portfolio.institutions WHERE id = %s", [INSTITUTION])
    db.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
    vacuum(db, "queues")


def check_holds_against_the_engine(db, sample: int = 200) -> int:
    """The SQL holds equal the engine's on a sample of debts; answers how many compared."""
    ids = [a for (a,) in db.execute(
        f"SELECT DISTINCT account_id FROM {SCRATCH}.calls ORDER BY 1 LIMIT %s", [sample])]
    now = db.execute("SELECT now()").fetchone()[0]
    held = dict(db.execute(f"SELECT account_id, hold_until FROM {SCRATCH}.holds "
                           f"WHERE account_id = ANY(%s)", [ids]).fetchall())
    for account_id in ids:
        calls = db.execute(f"SELECT started_at, contact_made FROM {SCRATCH}.calls "
                           f"WHERE account_id = %s", [account_id]).fetchall()
        history = {"call_attempts": [c for c, _ in calls],
                   "conversations": [c for c, talked in calls if talked]}
        engine = contact_policy.hold_until(US_RULE, history, {}, now)
        assert engine == held.get(account_id), (account_id, engine, held.get(account_id))
    return len(ids)


def set_holds(db, on: bool) -> int:
    """Every account free (not resting, no callback, no lease), then, when ``on``, the
    holds written as the ``contact_hold_changed`` handler does. Answers how many held."""
    db.execute("DELETE FROM queues.leases l USING queues.assignments a "
               "WHERE a.account_id = l.account_id AND a.institution_id = %s", [INSTITUTION])
    db.execute("UPDATE queues.assignments SET resting_until = NULL WHERE institution_id = %s",
               [INSTITUTION])
    db.execute("UPDATE queues.account_facts SET callback_at = NULL, contact_hold_until = NULL "
               "WHERE institution_id = %s", [INSTITUTION])
    held = 0
    if on:
        held = db.execute(f"""
            UPDATE queues.account_facts f SET contact_hold_until = h.hold_until
            FROM {SCRATCH}.holds h WHERE f.account_id = h.account_id
              AND h.hold_until > now()""").rowcount
        db.execute(f"""
            UPDATE queues.assignments a SET resting_until = GREATEST(a.resting_until,
                   h.hold_until) FROM {SCRATCH}.holds h
            WHERE a.account_id = h.account_id AND h.hold_until > now()""")
    db.execute("VACUUM ANALYZE queues.assignments")
    db.execute("VACUUM ANALYZE queues.account_facts")
    return held


def test_the_pull_with_the_frequency_rule_on_versus_off(stack_url, bench_limits, db):
    seconds = min(PHASE_SECONDS, bench_limits["seconds"])
    cleanup(db)
    try:
        began = time.perf_counter()
        db.execute("INSERT INTO portfolio.institutions (id, code, name, contact_from, "
                   "contact_until, jurisdiction) VALUES (%s, 'BENCHPOL', 'Benchmark política', "
                   "'00:00', '23:59:59', 'US') ON CONFLICT (id) DO NOTHING", [INSTITUTION])
        db.execute(FACTS_SQL, {"base": BASE, "institution": INSTITUTION, "n": ACCOUNTS})
        db.execute("INSERT INTO queues.institution_rules (institution_id, contact_from, "
                   "contact_until) VALUES (%s, '00:00', '23:59:59')", [INSTITUTION])
        with db.cursor() as cur:
            cur.executemany("INSERT INTO queues.team_members (team_id, agent_id) VALUES (%s, %s)",
                            [(TEAM, a) for a in AGENTS])
        db.execute(f"CREATE SCHEMA {SCRATCH}")
        db.execute(CALLS_SQL, {"base": BASE, "n": ACCOUNTS, "calls": ACTIVITIES})
        db.execute(HOLDS_SQL)
        compared = check_holds_against_the_engine(db)
        debts_called = db.execute(f"SELECT count(DISTINCT account_id) FROM {SCRATCH}.calls"
                                  ).fetchone()[0]
        db.execute("ANALYZE queues.account_facts")
        with ClusterRpcProxy(settings().nameko, context_data=SUPERVISOR,
                             timeout=RPC_TIMEOUT) as proxy:
            saved = proxy.queues.save_strategy({
                "institution_id": INSTITUTION, "name": "Bench política", "queues": [
                    q("Pozo", {"all": []}, [{"field": "days_past_due"}, {"field": "balance"}],
                      "manual", TEAM)]})
            placed = proxy.queues.apply_strategy(saved["id"])
        assert sum(placed["counts"].values()) == ACCOUNTS
        prepared = time.perf_counter() - began

        results, held = [], 0
        for round_ in (1, 2):
            for on in (False, True):
                count = set_holds(db, on)
                held = max(held, count)
                label = (f"frequency rule {'ON ' if on else 'OFF'} ({count:,} held), "
                         f"round {round_}")
                result, _pairs = run_agents(label, AGENTS, rpc_puller_for, seconds=seconds)
                results.append(result)
        off = [r for r in results if "OFF" in r.label]
        on = [r for r in results if "ON " in r.label]
        ratio = sum(r.count for r in on) / sum(r.elapsed for r in on) / (
            sum(r.count for r in off) / sum(r.elapsed for r in off))
        print_table(results, title=(
            f"next account, {len(AGENTS)} agents, one queue of {ACCOUNTS:,} accounts, "
            f"{ACTIVITIES:,} calls in the last 7 days over {debts_called:,} debts; "
            f"{seconds:g} s per row (closed loop, RPC)\n"
            f"machine: {os.cpu_count()} CPUs shared by the clients, the whole stack and "
            f"other work"))
        print(f"  held by the US 7-in-7 rule: {held:,} accounts ({held / ACCOUNTS:.1%}); SQL "
              f"holds equal the engine's on {compared} sampled debts; prepared in "
              f"{prepared:.0f} s\n"
              f"  throughput ON / OFF = {ratio:.2f}x (goal >= 0.8x)")
        failed = [f"{r.label}: {r.errors} errors ({r.first_error})" for r in results if r.errors]
        assert not failed, failed
        assert all(r.count for r in results)
    finally:
        cleanup(db)


@contextmanager
def rpc_puller_for(agent_id):
    identity = signed(agent_id, {"queues.work"}, (INSTITUTION,))
    with ClusterRpcProxy(settings().nameko, context_data=identity, timeout=60) as proxy:
        yield proxy.queues.next_account


# --- (b) SMS handed to Kannel ----------------------------------------------------------------

def sms_cleanup(db) -> None:
    db.execute("DELETE FROM messaging.sms_messages WHERE institution_id = %s", [SMS_INSTITUTION])
    db.execute("DELETE FROM messaging.sms_settings WHERE institution_id = %s", [SMS_INSTITUTION])


def _wait_for_callbacks():
    """Until messaging's callback listener answers (its timers run by then), a minute at most."""
    import socket

    host, port = settings().sms_callback_address.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            time.sleep(2)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("messaging's callback listener did not start")


def _campaign(db, text, length, label):
    """A campaign of SMS_MESSAGES queued at once and handed over by messaging's delivery
    timer: its Result and a line on the delivery reports."""
    db.execute("DELETE FROM messaging.sms_messages WHERE institution_id = %s", [SMS_INSTITUTION])
    started = time.perf_counter()
    db.execute("""
        INSERT INTO messaging.sms_messages (uuid, institution_id, direction, phone, body,
            encoding, segments, language, state)
        SELECT gen_random_uuid(), %s, 'outbound', '5530' || lpad(g::text, 6, '0'), %s,
               %s, %s, 'es', 'queued' FROM generate_series(1, %s) g""",
               [SMS_INSTITUTION, text, length["encoding"], length["segments"], SMS_MESSAGES])
    queued_in = time.perf_counter() - started

    def count(state_sql):
        return db.execute("SELECT count(*) FROM messaging.sms_messages WHERE "
                          f"institution_id = %s AND {state_sql}", [SMS_INSTITUTION]
                          ).fetchone()[0]
    deadline = time.monotonic() + max(600, SMS_MESSAGES / 5)
    handed_at = delivered_at = None
    while time.monotonic() < deadline:
        if handed_at is None and count("state = 'queued'") == 0:
            handed_at = time.perf_counter() - started
            # the reports get two more minutes at most (they are not what is measured)
            deadline = min(deadline, time.monotonic() + REPORTS_WAIT)
        if handed_at is not None and count("state IN ('delivered', 'failed')") \
                >= SMS_MESSAGES:
            delivered_at = time.perf_counter() - started
            break
        time.sleep(0.2)
    reported = count("state IN ('delivered', 'failed')")
    failed = count("state = 'failed'")
    assert handed_at is not None, f"{count(chr(39) + 'queued' + chr(39))} still queued"
    result = Result(f"campaign of {SMS_MESSAGES:,}, {label}", 20,
                    latencies=[handed_at / SMS_MESSAGES] * SMS_MESSAGES, elapsed=handed_at,
                    note="batches of 200 claimed SKIP LOCKED, handed over 20 at once")
    line = (f"{SMS_MESSAGES / handed_at:.0f} messages/s handed over ({handed_at:.1f} s after "
            f"queueing {SMS_MESSAGES:,} in {queued_in:.1f} s); "
            + (f"every delivery report back after {delivered_at:.1f} s "
               f"({SMS_MESSAGES / delivered_at:.0f}/s)" if delivered_at else
               f"{reported:,} delivery reports back {REPORTS_WAIT:g} s after the last "
               "was handed over")
            + f"; {failed} failed")
    return result, line


def test_sms_of_a_campaign_handed_to_kannel_versus_sendsms_directly(stack_url, db):
    sms_cleanup(db)
    # the stack's Kannel, as the demo seed configures it (messaging.seed)
    gateway_url = f"http://127.0.0.1:{settings().local_kannel_port}/cgi-bin/sendsms"
    username, plain = kannel.USER, kannel.PASSWORD
    callback = settings().sms_callback_url.rstrip("/")
    try:
        db.execute("INSERT INTO messaging.sms_settings (institution_id, gateway_url, username, "
                   "password, inbound_token, sender_id) VALUES (%s, %s, %s, %s, %s, "
                   "'BENCH9025')", [SMS_INSTITUTION, gateway_url, username,
                                    crypto.encrypt(plain), crypto.encrypt(kannel.TOKEN)])
        text = "Banco Demo: su pago de $1,250.00 vence el 15/12. Responda BAJA para no recibir SMS."
        length = sms.segments(text)

        # baseline: sendsms straight from here, same code and concurrency as the timer
        numbers = iter(range(10**9))
        lock = threading.Lock()

        @contextmanager
        def direct():
            def call():
                with lock:
                    n = next(numbers)
                return sms.send(gateway_url, username, plain, "BENCH9025",
                                f"5529{n:06d}", text, length["encoding"],
                                f"{callback}/kannel/dlr?id={uuid.uuid4()}&status=%d")
            yield call
        baseline = measure("sendsms straight to Kannel (messaging.sms.send, 20 threads)", direct,
                           concurrency=20, requests=max(100, SMS_MESSAGES // 10), seconds=60,
                           note="no database, no DLR bookkeeping")

        time.sleep(15)   # Kannel's reports of those (to ids nobody has, tried 6 times) die out

        campaigns = []
        before = os.environ.get("RECAUDO_BENCH_SMS_BEFORE")
        if before:   # that checkout's messaging first, in its place, same stack and Kannel
            log = open(stack.ROOT / settings().var_dir / "log" / "messaging-bench.log", "ab")
            stack.stop("messaging")
            proc = stack.service("messaging", dict(os.environ), log, before)
            try:
                _wait_for_callbacks()
                campaigns.append(_campaign(db, text, length, f"before ({before})"))
            finally:
                proc.terminate()
                proc.wait(20)
                log.close()
                stack.start("messaging")
                _wait_for_callbacks()
        campaigns.append(_campaign(db, text, length, "this checkout"))
        print_table([baseline] + [c[0] for c in campaigns], title=(
            f"SMS handed to Kannel (bearerbox + smsbox + fakesmsc of the stack); goal >= 200/s\n"
            f"machine: {os.cpu_count()} CPUs shared by this client, the whole stack, Kannel "
            f"and other work; load average {os.getloadavg()[0]:.1f}"))
        for result, line in campaigns:
            print(f"  {result.label}: {line}\n"
                  f"  ratio campaign / direct sendsms = {result.rps / baseline.rps:.2f}x")
        assert baseline.errors == 0, baseline.first_error
    finally:
        sms_cleanup(db)
