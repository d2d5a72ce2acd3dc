"""Reports over a large portfolio through the running stack (``make bench``):

    productivity  GET /api/v1/reports/productivity for a year, grouped by agent: gateway ->
                  activities service -> the ``productivity_daily`` rollup
       raw        the same sums straight from ``activities.activities`` (count by kind,
                  contacts, per agent over the year), in psql on the raw log
    aging         GET /api/v1/reports/aging grouped by stage: gateway -> portfolio service
                  -> the ``aging_daily`` rollup of today's snapshot
       raw        the same counts and sums by stage and bucket straight from
                  ``portfolio.accounts``

over 1,000,000 accounts and 5,000,000 activities of one institution (sizes from
RECAUDO_BENCH_REPORT_ACCOUNTS and RECAUDO_BENCH_REPORT_ACTIVITIES), generated set-based
with generate_series. The rollups are built the way the platform builds them: the
aging snapshot and its rollup by ``portfolio.aging.snapshot`` (the daily timer's
statement), the productivity rollup by one INSERT … SELECT … GROUP BY over the log (in
production it is kept by increments in each logging's transaction; a backfill is this
statement). Target: each report's p50 <= 0.2x the raw aggregate's. Like every benchmark
here it reports and does not fail on speed. Everything generated is removed at the end.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from datetime import date, timedelta

import psycopg
import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from recaudo_common.config import settings
from recaudo_common.reporting import bucket_sql

from .bench import measure, print_ratios, print_table, vacuum

INSTITUTION = 9200
ACCOUNTS = int(os.environ.get("RECAUDO_BENCH_REPORT_ACCOUNTS", "1000000"))
ACTIVITIES = int(os.environ.get("RECAUDO_BENCH_REPORT_ACTIVITIES", "5000000"))
DEBTORS = max(1, ACCOUNTS // 100)
AGENTS = 200
BASE = 960_000_000          # account and debtor ids
ACTIVITY_BASE = 96_000_000_000
PASSWORD = "bench-reports-2026"
ZONE = "America/Mexico_City"
CONCURRENCY = 2             # the machine's cores


def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


@pytest.fixture(scope="module")
def db():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        yield conn


def cleanup(db) -> None:
    i = INSTITUTION
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")   # the append-only log
        for statement in (
                "DELETE FROM activities.productivity_daily WHERE institution_id = %s",
                "DELETE FROM activities.activities WHERE institution_id = %s",
                "DELETE FROM portfolio.aging_snapshots WHERE institution_id = %s",
                "DELETE FROM portfolio.aging_daily WHERE institution_id = %s",
                "DELETE FROM portfolio.aging_rolls WHERE institution_id = %s",
                "DELETE FROM portfolio.accounts WHERE institution_id = %s",
                "DELETE FROM portfolio.debtors WHERE institution_id = %s",
                "DELETE FROM portfolio.statuses WHERE institution_id = %s",
                "DELETE FROM portfolio.institutions WHERE id = %s"):
            db.execute(statement, [i])
    for statement in ("DELETE FROM auth.sessions WHERE user_id IN (SELECT id FROM auth.users "
                      "WHERE username = 'bench-reports')",
                      "DELETE FROM auth.api_tokens WHERE user_id IN (SELECT id FROM auth.users "
                      "WHERE username = 'bench-reports')",
                      "DELETE FROM auth.users WHERE username = 'bench-reports'",
                      "DELETE FROM auth.profiles WHERE name = 'bench-reports'"):
        db.execute(statement)
    vacuum(db, "activities", "portfolio")


def _timed(label: str, db, statement: str, params=None) -> None:
    began = time.perf_counter()
    db.execute(statement, params or {})
    print(f"  {label}: {time.perf_counter() - began:.1f} s", flush=True)


def generate(db) -> None:
    """The institution, its debtors and accounts, today's aging snapshot and its rollup,
    a year of activities and their productivity rollup: all set-based."""
    print(f"\ngenerating {ACCOUNTS:,} accounts and {ACTIVITIES:,} activities", flush=True)
    db.execute("INSERT INTO portfolio.institutions (id, code, name) VALUES (%s, 'BENCHREP', "
               "'Benchmark reportes')", [INSTITUTION])
    statuses = [r[0] for r in db.execute(
        "INSERT INTO portfolio.statuses (institution_id, code, name) SELECT %s, 'E' || g, "
        "'Estatus ' || g FROM generate_series(1, 3) g RETURNING id", [INSTITUTION]).fetchall()]
    _timed("debtors", db, """
        INSERT INTO portfolio.debtors (id, institution_id, customer_number, name)
        SELECT %(base)s + g, %(i)s, 'BR' || g, 'DEUDOR BENCH ' || g
        FROM generate_series(1, %(n)s) g""", {"base": BASE, "i": INSTITUTION, "n": DEBTORS})
    # days past due spread over -30..369 (negative: current), stage from it, 3 statuses
    _timed("accounts", db, """
        INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number, product,
            original_amount, balance, overdue_amount, days_past_due, stage, status_id)
        SELECT %(base)s + g, %(i)s, %(base)s + 1 + (g %% %(debtors)s), 'BR' || g, 'Tarjeta',
               20000, b, CASE WHEN d > 0 THEN b / 3 ELSE 0 END, greatest(d, 0),
               CASE WHEN g %% 50 = 0 THEN 'litigation' WHEN d > 0 THEN 'delinquent'
                    ELSE 'current' END,
               (%(statuses)s::int[])[(1 + g %% 3)::int]
        FROM generate_series(1::bigint, %(n)s) g,
             LATERAL (SELECT ((g * 7919) %% 400) - 30 AS d,
                             round(((g * 104729) %% 1999900) / 100.0 + 1000, 2) AS b) x""",
           {"base": BASE, "i": INSTITUTION, "n": ACCOUNTS, "debtors": DEBTORS,
            "statuses": statuses})
    from portfolio import aging

    engine = create_engine(settings().database_url)
    began = time.perf_counter()
    with Session(engine) as session:     # the daily timer's snapshot (and its rollup)
        aging.snapshot(session, date.today())
        session.commit()
    engine.dispose()
    print(f"  aging snapshot + rollup: {time.perf_counter() - began:.1f} s", flush=True)
    # a year of activities: agent g % 200 (each agent keeps to one queue), kinds in turn,
    # one in three a contact, seq unique per account
    _timed("activities", db, """
        INSERT INTO activities.activities (id, institution_id, account_id, debtor_id, agent_id,
            logged_by, queue_id, kind, direction, started_at, recorded_at, contact_made,
            seq, prev_hash, hash)
        SELECT %(abase)s + g, %(i)s, %(base)s + 1 + (g %% %(n)s), %(base)s + 1,
               95000 + g %% %(agents)s, 95000 + g %% %(agents)s, 1 + (g %% %(agents)s) %% 10,
               (ARRAY['call','call','call','visit','email','sms','note'])[(1 + g %% 7)::int],
               'outbound', t, t, g %% 3 = 0, 1 + g / %(n)s, repeat('0', 64), repeat('0', 64)
        FROM generate_series(1::bigint, %(m)s) g,
             LATERAL (SELECT now() - make_interval(days => (g %% 365)::int,
                                                   mins => (g %% 600)::int) AS t) x""",
           {"abase": ACTIVITY_BASE, "i": INSTITUTION, "base": BASE, "n": ACCOUNTS,
            "m": ACTIVITIES, "agents": AGENTS})
    _timed("productivity rollup", db, f"""
        INSERT INTO activities.productivity_daily (day, agent_id, institution_id, queue_id,
            calls, visits, emails, faxes, sms, letters, notes, contacts)
        SELECT date(timezone('{ZONE}', started_at)), agent_id, institution_id,
               coalesce(queue_id, 0),
               count(*) FILTER (WHERE kind = 'call'), count(*) FILTER (WHERE kind = 'visit'),
               count(*) FILTER (WHERE kind = 'email'), count(*) FILTER (WHERE kind = 'fax'),
               count(*) FILTER (WHERE kind = 'sms'), count(*) FILTER (WHERE kind = 'letter'),
               count(*) FILTER (WHERE kind = 'note'), count(*) FILTER (WHERE contact_made)
        FROM activities.activities WHERE institution_id = %(i)s
        GROUP BY 1, 2, 3, 4""", {"i": INSTITUTION})
    _timed("analyze", db, "ANALYZE activities.activities, activities.productivity_daily, "
                          "portfolio.accounts, portfolio.aging_daily")


def reports_token(db, stack_url: str) -> str:
    from auth.credentials import hash_password

    profile = db.execute(
        "INSERT INTO auth.profiles (name, description, permissions) VALUES ('bench-reports', "
        "'benchmark', %s) RETURNING id", [["reports.view", "activities.read"]]).fetchone()[0]
    db.execute("INSERT INTO auth.users (username, display_name, profile_id, password_hash, "
               "password_changed_at, institutions) VALUES ('bench-reports', 'Bench', %s, %s, "
               "now(), %s)", [profile, hash_password(PASSWORD), [INSTITUTION]])
    answer = requests.post(f"{stack_url}/api/v1/auth/token", timeout=60,
                           json={"username": "bench-reports", "password": PASSWORD})
    answer.raise_for_status()
    return answer.json()["access_token"]


def gateway(stack_url: str, token: str, path: str):
    @contextmanager
    def client():
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"

        def call():
            response = http.get(stack_url + path, timeout=300)
            response.raise_for_status()
            return response.json()
        yield call
        http.close()
    return client


def raw(statement: str, params: dict):
    @contextmanager
    def client():
        with psycopg.connect(_dsn(), autocommit=True) as conn:
            yield lambda: conn.execute(statement, params).fetchall()
    return client


RAW_PRODUCTIVITY = """
    SELECT agent_id,
           count(*) FILTER (WHERE kind = 'call') AS calls,
           count(*) FILTER (WHERE kind = 'visit') AS visits,
           count(*) FILTER (WHERE kind = 'email') AS emails,
           count(*) FILTER (WHERE kind = 'fax') AS faxes,
           count(*) FILTER (WHERE kind = 'sms') AS sms,
           count(*) FILTER (WHERE kind = 'letter') AS letters,
           count(*) FILTER (WHERE kind = 'note') AS notes,
           count(*) FILTER (WHERE contact_made) AS contacts
    FROM activities.activities
    WHERE institution_id = %(i)s
      AND started_at >= timezone(%(zone)s, CAST(%(first)s AS timestamp))
      AND started_at < timezone(%(zone)s, CAST(%(last)s AS timestamp)) + interval '1 day'
    GROUP BY agent_id ORDER BY agent_id"""

RAW_AGING = f"""
    SELECT stage, {bucket_sql("days_past_due")} AS bucket, count(*), sum(balance),
           sum(overdue_amount)
    FROM portfolio.accounts WHERE institution_id = %(i)s
    GROUP BY 1, 2 ORDER BY 1, 2"""


def test_reports_over_a_million_accounts_versus_raw_aggregates(stack_url, bench_limits, db):
    cleanup(db)
    try:
        generate(db)
        token = reports_token(db, stack_url)
        last = date.today()
        first = last - timedelta(days=364)
        productivity = (f"/api/v1/reports/productivity?institution_id={INSTITUTION}"
                        f"&date_from={first}&date_to={last}&group_by=agent")
        aging = f"/api/v1/reports/aging?institution_id={INSTITUTION}&group_by=stage"

        # both paths answer the same figures before they are timed
        via_gateway = gateway(stack_url, token, productivity)
        with via_gateway() as call:
            rows = call()["rows"]
        with raw(RAW_PRODUCTIVITY, {"i": INSTITUTION, "zone": ZONE, "first": first,
                                    "last": last})() as call:
            expected = call()
        assert len(rows) == len(expected) == AGENTS
        assert sum(r["calls"] for r in rows) == sum(r[1] for r in expected)
        assert sum(r["contacts"] for r in rows) == sum(r[8] for r in expected)
        with gateway(stack_url, token, aging)() as call:
            report = call()
        assert report["totals"]["accounts"] == ACCOUNTS

        slow = {"requests": min(bench_limits["requests"], 40),
                "seconds": bench_limits["seconds"]}
        fast = {"requests": min(bench_limits["requests"], 400),
                "seconds": bench_limits["seconds"]}
        results = [
            measure("productivity report", via_gateway, concurrency=CONCURRENCY, **fast,
                    note="GET /api/v1/reports/productivity, a year by agent (rollup)"),
            measure("productivity raw", raw(RAW_PRODUCTIVITY, {
                "i": INSTITUTION, "zone": ZONE, "first": first, "last": last}),
                concurrency=CONCURRENCY, warmup=1, **slow,
                note=f"the same sums over {ACTIVITIES:,} rows of activities.activities"),
            measure("aging report", gateway(stack_url, token, aging), concurrency=CONCURRENCY,
                    **fast, note="GET /api/v1/reports/aging by stage (aging_daily)"),
            measure("aging raw", raw(RAW_AGING, {"i": INSTITUTION}), concurrency=CONCURRENCY,
                    warmup=1, **slow,
                    note=f"the same by stage and bucket over {ACCOUNTS:,} portfolio.accounts"),
        ]
        print_table(results, f"reports over {ACCOUNTS:,} accounts and {ACTIVITIES:,} "
                             f"activities ({CONCURRENCY} clients); target: report <= 0.2x raw")
        print_ratios(results, [("productivity report", "productivity raw"),
                               ("aging report", "aging raw")])
    finally:
        began = time.perf_counter()
        cleanup(db)
        print(f"cleanup: {time.perf_counter() - began:.1f} s")
