"""Activity logging through the running stack (``make bench``):

    gateway    32 agents, each on its own HTTP session with a bearer token, POST
               /api/v1/activities back to back (a call with a result code, an idempotency
               key each): gateway -> activities -> portfolio (the account's scope) ->
               hash chain, rollup and outbox in one transaction
    raw        the very rows the gateway stored, written again by one psycopg
               ``executemany`` (pipelined) into a copy of ``activities.activities``
    floor      a bearer-token ping by the same 32 agents (the cheapest authenticated request)
    rollup lag after each of a series of single loggings, the time until the agent's
               productivity (GET /api/v1/productivity) counts it

Targets (issue 22): >= 0.4x the floor's throughput; rollup lag p99 < 1 s.
Like every benchmark here it reports and does not fail on speed. Everything created is
removed at the end (the log's append-only trigger is bypassed for that cleanup only).
"""
from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from recaudo_common.config import settings

from .bench import PING_PATH, bearer_ping, measure, print_floor_ratio, print_table, vacuum

AGENTS = 32
INSTITUTION = 9003
ACCOUNTS_PER_AGENT = 20
BASE = 903_000_000
PASSWORD = "bench-activities-2026"
LAG_SAMPLES = 50
PERMISSIONS = ["activities.log", "activities.read", "portfolio.read"]
SCRATCH = "bench_activities"


def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


@pytest.fixture(scope="module")
def db():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        yield conn


def cleanup(db) -> None:
    """Nothing of the benchmark institution, its users or its scratch table."""
    i = INSTITUTION
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")  # the append-only trigger
        for statement in (
                "DELETE FROM activities.productivity_daily WHERE institution_id = %s",
                "DELETE FROM activities.chain_heads WHERE account_id IN "
                "(SELECT id FROM portfolio.accounts WHERE institution_id = %s)",
                "DELETE FROM activities.activities WHERE institution_id = %s",
                "DELETE FROM activities.result_codes WHERE institution_id = %s",
                "DELETE FROM activities.institution_settings WHERE institution_id = %s",
                "DELETE FROM portfolio.accounts WHERE institution_id = %s",
                "DELETE FROM portfolio.debtors WHERE institution_id = %s",
                "DELETE FROM portfolio.institutions WHERE id = %s"):
            db.execute(statement, [i])
    db.execute("DELETE FROM auth.sessions WHERE user_id IN "
               "(SELECT id FROM auth.users WHERE username LIKE 'bench-act-%%')")
    db.execute("DELETE FROM auth.api_tokens WHERE user_id IN "
               "(SELECT id FROM auth.users WHERE username LIKE 'bench-act-%%')")
    db.execute("DELETE FROM auth.users WHERE username LIKE 'bench-act-%%'")
    db.execute("DELETE FROM auth.profiles WHERE name LIKE 'bench-activities-%%'")
    db.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
    vacuum(db, "activities", "portfolio")


def setup_world(db, stack_url) -> dict[int, dict]:
    """32 collectors with a bearer token each and 20 accounts of institution 9003 assigned
    to each: agent id -> {"token", "accounts"}."""
    from auth.credentials import hash_password

    # open all day: the benchmark's outbound calls are judged by the contact policy
    db.execute("INSERT INTO portfolio.institutions (id, code, name, contact_from, contact_until) "
               "VALUES (%s, 'BENCHACT', 'Benchmark actividades', '00:00', '23:59:59') "
               "ON CONFLICT (id) DO NOTHING", [INSTITUTION])
    profile = db.execute(
        "INSERT INTO auth.profiles (name, description, permissions) VALUES (%s, %s, %s) "
        "RETURNING id", [f"bench-activities-{os.getpid()}", "benchmark", PERMISSIONS]
    ).fetchone()[0]
    ids = [u for (u,) in db.execute(
        "INSERT INTO auth.users (username, display_name, profile_id, password_hash, "
        "password_changed_at, institutions) SELECT 'bench-act-' || g, 'Bench ' || g, %s, %s, "
        "now(), %s FROM generate_series(1, %s) g RETURNING id",
        [profile, hash_password(PASSWORD), [INSTITUTION], AGENTS]).fetchall()]
    db.execute("""
        INSERT INTO portfolio.debtors (id, institution_id, customer_number, name)
        SELECT %(base)s + g, %(i)s, 'BA' || g, 'DEUDOR BENCH ' || g
        FROM generate_series(1, %(n)s) g""",
               {"base": BASE, "i": INSTITUTION, "n": AGENTS * ACCOUNTS_PER_AGENT})
    db.execute("""
        INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number, product,
                                        original_amount, balance, stage, assigned_agent_id)
        SELECT %(base)s + g, %(i)s, %(base)s + g, 'BA' || g, 'Tarjeta', 9000, 5000,
               'delinquent', (%(ids)s::int[])[1 + (g - 1) / %(per)s]
        FROM generate_series(1, %(n)s) g""",
               {"base": BASE, "i": INSTITUTION, "n": AGENTS * ACCOUNTS_PER_AGENT,
                "ids": ids, "per": ACCOUNTS_PER_AGENT})
    world = {}
    for n, user_id in enumerate(ids):
        answer = requests.post(f"{stack_url}/api/v1/auth/token", timeout=60, json={
            "username": f"bench-act-{n + 1}", "password": PASSWORD})
        answer.raise_for_status()
        first = BASE + 1 + n * ACCOUNTS_PER_AGENT
        world[user_id] = {"token": answer.json()["access_token"],
                          "accounts": list(range(first, first + ACCOUNTS_PER_AGENT))}
    return world


def call_body(account_id: int) -> dict:
    start = datetime.now(timezone.utc) - timedelta(minutes=3)
    return {"account_id": account_id, "kind": "call", "direction": "outbound",
            "phone": "5512345678", "caller_id": "5550001000",   # MX: no hidden caller id
            "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=2)).isoformat(), "result_code": "NC",
            "description": "No contesta; se deja para otro horario",
            "idempotency_key": str(uuid.uuid4())}


def gateway_logger(stack_url: str, world: dict):
    agents = iter(list(world.values()) * 1000)

    @contextmanager
    def client():
        agent = next(agents)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {agent['token']}"
        accounts = iter(agent["accounts"] * 100_000)

        def log():
            answer = http.post(f"{stack_url}/api/v1/activities", json=call_body(next(accounts)),
                               timeout=60)
            if answer.status_code != 201:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:200]}")
        try:
            yield log
        finally:
            http.close()
    return client


def raw_executemany(db) -> tuple[int, float]:
    """The gateway's rows again, into a copy of the table, by one pipelined executemany."""
    db.execute(f"CREATE SCHEMA {SCRATCH}")
    db.execute(f"CREATE TABLE {SCRATCH}.activities (LIKE activities.activities "
               f"INCLUDING DEFAULTS INCLUDING INDEXES)")
    columns = [c for (c,) in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'activities' "
        "AND table_name = 'activities' AND column_name <> 'id' ORDER BY ordinal_position")]
    names = ", ".join(columns)
    rows = db.execute(f"SELECT {names} FROM activities.activities WHERE institution_id = %s",
                      [INSTITUTION]).fetchall()
    placeholders = ", ".join(["%s"] * len(columns))
    began = time.perf_counter()
    with db.cursor() as cursor, db.transaction():
        cursor.executemany(f"INSERT INTO {SCRATCH}.activities ({names}) VALUES ({placeholders})",
                           [tuple(psycopg.types.json.Jsonb(v) if isinstance(v, (dict, list))
                                  else v for v in row) for row in rows])
    return len(rows), time.perf_counter() - began


def rollup_lag(stack_url: str, agent: dict) -> list[float]:
    """Seconds from a logging's answer until the agent's productivity counts it."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {agent['token']}"
    today = datetime.now(ZoneInfo("America/Mexico_City")).date().isoformat()

    def calls() -> int:
        answer = http.get(f"{stack_url}/api/v1/productivity", timeout=30, params={
            "date_from": today, "date_to": today, "institution_id": INSTITUTION})
        answer.raise_for_status()
        return answer.json()["totals"]["calls"]

    lags = []
    for n in range(LAG_SAMPLES):
        before = calls()
        answer = http.post(f"{stack_url}/api/v1/activities", timeout=30,
                           json=call_body(agent["accounts"][n % ACCOUNTS_PER_AGENT]))
        assert answer.status_code == 201, answer.text
        logged = time.perf_counter()
        while calls() <= before:
            if time.perf_counter() - logged > 30:
                raise TimeoutError("the rollup never counted the activity")
        lags.append(time.perf_counter() - logged)
    http.close()
    return lags


def test_activity_logging_with_32_agents_versus_executemany(stack_url, bench_limits, db):
    cleanup(db)
    try:
        world = setup_world(db, stack_url)
        result = measure("gateway POST /api/v1/activities", gateway_logger(stack_url, world),
                         concurrency=AGENTS, requests=bench_limits["requests"],
                         seconds=bench_limits["seconds"], warmup=2)
        floor = measure(f"gateway GET {PING_PATH} (bearer floor)",
                        bearer_ping(stack_url, [a["token"] for a in world.values()]),
                        concurrency=AGENTS, requests=bench_limits["requests"],
                        seconds=bench_limits["seconds"])
        stored, seconds = raw_executemany(db)
        lags = sorted(rollup_lag(stack_url, next(iter(world.values()))))
        print_table([result, floor], title=(
            f"activity logging: {AGENTS} agents through the gateway; targets >= 0.4x the "
            f"bearer ping, rollup lag p99 < 1 s"))
        raw_rate = stored / seconds if seconds else float("nan")
        p = lambda q: lags[min(int(len(lags) * q), len(lags) - 1)] * 1000   # noqa: E731
        print(f"  raw executemany (pipelined) of the same {stored:,} rows into a copy of the "
              f"table: {seconds:.2f} s = {raw_rate:,.0f} rows/s; the gateway did "
              f"{result.rps:,.0f}/s = {result.rps / raw_rate:.3f} of it")
        print_floor_ratio(result, floor, 0.4)
        print(f"  rollup lag over {len(lags)} loggings: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms "
              f"(the rollup is written in the logging's own transaction)")
        assert result.errors == 0, result.first_error
        assert stored >= result.count
    finally:
        cleanup(db)
