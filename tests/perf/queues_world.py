"""The queues benchmarks' world: synthetic account facts, strategies written as data, signed callers, and the agents' loop that pulls and finishes accounts (shared by test_bench_queues and test_bench_compliance)."""
from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from queues import rules
from recaudo_common.config import settings
from recaudo_common.identity import Identity, sign

from .bench import Result, vacuum

REBUILD_INSTITUTION, PULL_INSTITUTION = 9001, 9002
REBUILD_ACCOUNTS, PULL_ACCOUNTS = 1_000_000, 100_000
REBUILD_BASE, PULL_BASE = 9_001_000_000, 9_002_000_000
REBUILD_TEAM, PULL_TEAM = 90010, 90020
REBUILD_AGENTS = tuple(range(900_101, 900_121))        # 20 collectors
AGENTS = 100
RPC_AGENTS = tuple(range(900_201, 900_201 + AGENTS))
PACED_PER_AGENT = 2.0          # pulls per second per agent in the paced runs (200/s offered)
PHASE_SECONDS = 10.0
RAW_POOL_ROWS = 400_000
SCRATCH = "bench_queues_scratch"
RPC_TIMEOUT = 900.0
PASSWORD = "bench-queues-clave-larga"

NEXT_PATH = "/api/v1/queues/next"


# --- plumbing ------------------------------------------------------------------------

def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _libpq_env() -> dict:
    url = make_url(settings().database_url)
    env = dict(os.environ, PGHOST=url.host or "127.0.0.1", PGPORT=str(url.port or 5432),
               PGUSER=url.username or "postgres", PGDATABASE=url.database)
    if url.password:
        env["PGPASSWORD"] = url.password
    return env


@pytest.fixture(scope="module")
def db():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        yield conn


def signed(user_id, permissions, institutions) -> dict:
    return {"identity": sign(Identity(
        user_id=user_id, username=f"bench{user_id}", profile="Bench",
        permissions=frozenset(permissions), institutions=institutions), ttl=3600)}


SUPERVISOR = signed(900_000, {"queues.manage", "queues.work"}, None)

FACTS_SQL = """
INSERT INTO queues.account_facts
    (account_id, institution_id, debtor_id, stage, status_id, days_past_due, balance,
     overdue_amount, product, state, time_zone, next_due_date, last_contact_at,
     last_result_code, open_promise, broken_promise)
SELECT %(base)s + i, %(institution)s, %(base)s + i,
       CASE WHEN i %% 10 = 0 THEN 'litigation' WHEN i %% 4 = 0 THEN 'current'
            ELSE 'delinquent' END,
       CASE WHEN i %% 5 = 0 THEN NULL ELSE i %% 8 END,
       CASE WHEN i %% 4 = 0 AND i %% 10 <> 0 THEN 0 ELSE 1 + (i * 37) %% 360 END,
       round(((i::bigint * 7919) %% 100000)::numeric + (i %% 100) / 100.0, 2),
       least(round(((i::bigint * 7919) %% 100000)::numeric + (i %% 100) / 100.0, 2),
             (i %% 50) * 100),
       (ARRAY['Tarjeta', 'Préstamo', 'Automotriz', 'Nómina'])[i %% 4 + 1],
       (ARRAY['Jalisco', 'Sonora', 'Yucatán', 'Nuevo León', NULL])[i %% 5 + 1],
       'America/Mexico_City',
       CASE WHEN i %% 6 = 0 THEN NULL ELSE current_date + (i * 13) %% 30 END,
       CASE WHEN i %% 3 = 0 THEN NULL
            ELSE now() - make_interval(days => i %% 40, hours => 1) END,
       CASE WHEN i %% 2 = 0 THEN 'NC' END,
       i %% 11 = 0, i %% 13 = 0
FROM generate_series(1, %(n)s) AS i
"""


def L(field, op, value=None):
    return {"field": field, "op": op, **({} if value is None else {"value": value})}


def q(name, conditions, sort, policy="round_robin", team_id=REBUILD_TEAM):
    return {"name": name, "conditions": conditions, "sort": sort, "team_id": team_id,
            "policy": policy}


SIX_QUEUES = [
    q("Litigio", L("stage", "eq", "litigation"), [{"field": "balance"}], "balance_weighted"),
    q("Promesa incumplida", {"all": [L("broken_promise", "eq", True),
                                     L("days_past_due", "gte", 1)]},
      [{"field": "overdue_amount"}]),
    q("Mora 90+", L("days_past_due", "gte", 90),
      [{"field": "days_past_due"}, {"field": "balance"}], "capacity"),
    q("Mora 30-89 saldo alto", {"all": [L("days_past_due", "between", [30, 89]),
                                        L("balance", "gte", "20000")]},
      [{"field": "balance"}]),
    q("Mora temprana", {"any": [L("days_past_due", "between", [1, 29]),
                                L("status_id", "in", [3, 4])]},
      [{"field": "days_since_last_contact"}, {"field": "balance"}]),
    q("Preventiva", {"all": [L("stage", "eq", "current"), L("days_to_next_due", "lte", 5)]},
      [{"field": "days_to_next_due", "direction": "asc"}], "round_robin"),
]


def raw_case(queue_ids) -> str:
    """The strategy's first-match CASE, compiled by queues.rules with literal values."""
    def sql(conditions):
        return str(rules.compile_condition(conditions).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    whens = [f"WHEN {sql(spec['conditions'])} THEN {queue_id}"
             for spec, queue_id in zip(SIX_QUEUES, queue_ids)]
    return "CASE " + " ".join(whens) + " END"


def psql_timed(statement: str) -> float:
    """Run one statement in psql with \\timing; its own report, in seconds."""
    out = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "\\timing on",
                          "-c", statement], env=_libpq_env(), capture_output=True, text=True,
                         check=True).stdout
    return float(re.findall(r"Time: ([\d.]+) ms", out)[-1]) / 1000


def register_institution(db, institution_id: int) -> None:
    """The benchmark's institution as portfolio knows it: queues asks portfolio about the
    institution a strategy names (an unknown one is refused)."""
    db.execute("INSERT INTO portfolio.institutions (id, code, name) VALUES (%s, %s, %s) "
               "ON CONFLICT (id) DO NOTHING",
               [institution_id, f"BENCHQ{institution_id}", f"Benchmark filas {institution_id}"])


def cleanup(db, institutions) -> None:
    """Nothing of the benchmark's institutions in queues (nor the portfolio row
    ``register_institution`` made)."""
    ids = list(institutions)
    db.execute("DELETE FROM queues.leases l USING queues.assignments a "
               "WHERE a.account_id = l.account_id AND a.institution_id = ANY(%s)", [ids])
    db.execute("DELETE FROM queues.work_log w USING queues.queues q, queues.strategies s "
               "WHERE w.queue_id = q.id AND q.strategy_id = s.id AND s.institution_id = ANY(%s)",
               [ids])
    db.execute("DELETE FROM queues.assignments WHERE institution_id = ANY(%s)", [ids])
    db.execute("DELETE FROM queues.assigned_daily WHERE institution_id = ANY(%s)", [ids])
    db.execute("UPDATE queues.strategies SET challenger_id = NULL WHERE institution_id = ANY(%s)",
               [ids])
    db.execute("DELETE FROM queues.strategies WHERE institution_id = ANY(%s)", [ids])
    db.execute("DELETE FROM queues.account_facts WHERE institution_id = ANY(%s)", [ids])
    db.execute("DELETE FROM queues.institution_rules WHERE institution_id = ANY(%s)", [ids])
    db.execute("DELETE FROM queues.team_members WHERE team_id IN (%s, %s)",
               [REBUILD_TEAM, PULL_TEAM])
    db.execute("DELETE FROM portfolio.institutions WHERE id = ANY(%s) AND code LIKE 'BENCHQ%%'",
               [ids])
    db.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
    vacuum(db, "queues")


def drain_outbox(db, since_id: int, seconds: float = 120) -> None:
    """Wait for the stack's relay to publish this run's events, then remove them."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and db.execute(
            "SELECT count(*) FROM queues.outbox WHERE id > %s AND published_at IS NULL",
            [since_id]).fetchone()[0]:
        time.sleep(0.5)
    db.execute("DELETE FROM queues.outbox WHERE id > %s AND published_at IS NOT NULL "
               "AND event_type IN ('queues_rebuilt', 'assignments_changed')", [since_id])


def outbox_mark(db) -> int:
    return db.execute("SELECT coalesce(max(id), 0) FROM queues.outbox").fetchone()[0]


def print_rows(title: str, header: tuple, rows: list[tuple], notes: list[str] = ()) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = "  ".join(f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{w}}}"
                     for i, w in enumerate(widths))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    print("\n".join(["", title, rule, line.format(*header), rule,
                     *(line.format(*map(str, r)) for r in rows), rule, *notes]))


# --- (a) the rebuild -----------------------------------------------------------------------


FINISH_SQL = """
WITH locked AS (SELECT account_id FROM queues.assignments WHERE account_id = %(a)s
                FOR UPDATE),
     gone AS (DELETE FROM queues.leases WHERE account_id IN (SELECT account_id FROM locked)
                AND agent_id = %(g)s RETURNING account_id),
     later AS (UPDATE queues.account_facts SET callback_at = now() + interval '1 day'
               WHERE account_id IN (SELECT account_id FROM gone) RETURNING account_id),
     rested AS (UPDATE queues.assignments SET resting_until = now() + interval '1 day'
                WHERE account_id IN (SELECT account_id FROM gone))
INSERT INTO queues.work_log (account_id, queue_id, agent_id, event)
SELECT account_id, %(q)s, %(g)s, 'worked' FROM later
"""


FINISHERS = 8   # connections the untimed finishing step shares (max_connections is 100)


@contextmanager
def finisher_pool(size=FINISHERS):
    pool = queue.SimpleQueue()
    conns = [psycopg.connect(_dsn(), autocommit=True) for _ in range(size)]
    for conn in conns:
        pool.put(conn)

    def finish(params):
        conn = pool.get()
        try:
            conn.execute(FINISH_SQL, params)
        finally:
            pool.put(conn)
    try:
        yield finish
    finally:
        for conn in conns:
            conn.close()


def run_agents(label, agents, make_client, *, seconds, paced_rate=None) -> tuple[Result, list]:
    """One thread per agent: pull (timed), then finish the account (untimed). Closed loop
    (back to back) or paced (``paced_rate`` pulls/s per agent, staggered; a late pull is
    timed from when it was due, so slowness is not hidden). Returns the result and the
    (account, agent) pairs handed out."""
    result = Result(label, len(agents))
    per_thread = [[] for _ in agents]
    pulled = [[] for _ in agents]
    errors = []
    start = [0.0]
    # the clock starts in the barrier's action, before any thread is let go
    barrier = threading.Barrier(len(agents) + 1,
                                action=lambda: start.__setitem__(0, time.perf_counter()))
    ends = [0.0] * len(agents)

    def worker(index, agent_id):
        try:
            with make_client(agent_id) as pull:
                barrier.wait()
                began = start[0]
                perf = time.perf_counter
                interval = 1 / paced_rate if paced_rate else 0
                due = began + index * interval / len(agents)
                while True:
                    if paced_rate:
                        due += interval
                        wait = due - perf()
                        if wait > 0:
                            time.sleep(wait)
                        t0 = due
                    else:
                        t0 = perf()
                    if t0 - began >= seconds:
                        break
                    try:
                        lease = pull()
                    except Exception as exc:   # counted, reported
                        errors.append(f"{type(exc).__name__}: {exc}"[:300])
                        continue
                    per_thread[index].append(perf() - t0)
                    if lease is None:
                        continue
                    pulled[index].append(lease["account_id"])
                    finish({"a": lease["account_id"], "g": agent_id,
                            "q": lease.get("queue_id")})
                ends[index] = perf()
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:
            errors.append(f"setup {type(exc).__name__}: {exc}"[:300])
            barrier.abort()

    with finisher_pool() as finish:
        threads = [threading.Thread(target=worker, args=(i, a), daemon=True)
                   for i, a in enumerate(agents)]
        for t in threads:
            t.start()
        try:
            barrier.wait(timeout=180)
        except threading.BrokenBarrierError:
            for t in threads:
                t.join()
            raise RuntimeError(f"{label}: a client failed to start: {errors[:1]}")
        for t in threads:
            t.join()
    result.elapsed = max(ends) - start[0]
    result.latencies = [x for xs in per_thread for x in xs]
    result.errors = len(errors)
    result.first_error = errors[0] if errors else ""
    empty = result.count - sum(len(p) for p in pulled)
    result.note = (f"{sum(len(p) for p in pulled)} accounts handed out"
                   + (f", {empty} empty answers" if empty else ""))
    return result, [(a, agents[i]) for i, accounts in enumerate(pulled) for a in accounts]
