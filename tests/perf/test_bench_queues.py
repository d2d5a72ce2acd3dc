"""The queues service under load, against the running stack (``make bench``):

(a) rebuild: 1,000,000 synthetic accounts (institution 9001) placed by a 6-queue
    strategy through ``queues.apply_strategy`` (first apply, then re-applies of the
    steady state), versus ONE raw ``UPDATE ... FROM`` in psql with the same CASE
    (the conditions compiled by ``queues.rules``) over an unindexed scratch copy,
    in the same run. Target: the service within 1.5x of the raw statement.

(b) the next-account pull with 100 agents on one shared queue (100,000 accounts of
    institution 9002, nobody's until pulled): through the gateway (``POST
    /api/v1/queues/next``) when it exists, else through a standalone ClusterRpcProxy
    per agent thread (labelled so), back to back ("closed") and paced at 2 pulls/s per
    agent ("200/s offered"), versus pgbench running a raw ``UPDATE ... WHERE id =
    (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)`` script on a scratch table the same
    ways. Targets: p99 < 100 ms and >= 200 pulls/s. After each pull the harness
    finishes the account untimed, as the activities service would after a call (under
    the assignment's row lock, as ``working.release`` does: lease ended, callback
    tomorrow, the assignment resting until then, ``worked`` logged), so every pull takes
    a new account; afterwards the work
    log is checked for double leases (an account pulled again while its lease was live)
    and for accounts handed out twice (they all had a callback set once worked).

Nothing here asserts on time; the tables are printed (run with ``-s``). Everything
created is removed at the end (facts, assignments, strategies, teams, work log, the
scratch schema, the benchmark's users). Timings depend on a 2-CPU machine shared by
the clients, the services, PostgreSQL and RabbitMQ.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from queues import rules
from recaudo_common.config import settings
from recaudo_common.identity import Identity, sign

from .bench import Result, print_table, vacuum

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


def cleanup(db, institutions) -> None:
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

def test_rebuild_of_a_million_accounts_versus_one_raw_update(stack_url, db):
    cleanup(db, [REBUILD_INSTITUTION])
    mark = outbox_mark(db)
    try:
        started = time.perf_counter()
        db.execute(FACTS_SQL, {"base": REBUILD_BASE, "institution": REBUILD_INSTITUTION,
                               "n": REBUILD_ACCOUNTS})
        with db.cursor() as cur:
            cur.executemany("INSERT INTO queues.team_members (team_id, agent_id, capacity) "
                            "VALUES (%s, %s, %s)",
                            [(REBUILD_TEAM, a, 100 + 50 * (i % 3))
                             for i, a in enumerate(REBUILD_AGENTS)])
        db.execute("ANALYZE queues.account_facts")
        generated = time.perf_counter() - started

        with ClusterRpcProxy(settings().nameko, context_data=SUPERVISOR,
                             timeout=RPC_TIMEOUT) as proxy:
            saved = proxy.queues.save_strategy({"institution_id": REBUILD_INSTITUTION,
                                                "name": "Bench 6 filas", "queues": SIX_QUEUES})
            strategy_id, queue_ids = saved["id"], [x["id"] for x in saved["queues"]]

            runs = []
            for label, call in [
                    ("apply_strategy, first (1M inserted, 1M collectors announced)",
                     lambda: proxy.queues.apply_strategy(strategy_id)),
                    ("apply_strategy, again (steady state)",
                     lambda: proxy.queues.apply_strategy(strategy_id)),
                    ("rebuild_queues (steady state)",
                     lambda: proxy.queues.rebuild_queues(REBUILD_INSTITUTION)),
                    ("rebuild_queues (steady state)",
                     lambda: proxy.queues.rebuild_queues(REBUILD_INSTITUTION))]:
                began = time.perf_counter()
                result = call()
                runs.append((label, time.perf_counter() - began, result))
            simulate_began = time.perf_counter()
            simulation = proxy.queues.simulate_strategy(strategy_id)
            simulated = time.perf_counter() - simulate_began

        # the raw statement: the same CASE over an unindexed copy, in psql
        db.execute(f"CREATE SCHEMA {SCRATCH}")
        db.execute(f"CREATE TABLE {SCRATCH}.assignments_copy AS SELECT account_id, "
                   f"NULL::int AS queue_id FROM queues.account_facts "
                   f"WHERE institution_id = {REBUILD_INSTITUTION}")
        db.execute(f"VACUUM ANALYZE {SCRATCH}.assignments_copy")
        update = (f"UPDATE {SCRATCH}.assignments_copy c SET queue_id = {raw_case(queue_ids)} "
                  f"FROM queues.account_facts WHERE queues.account_facts.account_id = "
                  f"c.account_id AND queues.account_facts.institution_id = "
                  f"{REBUILD_INSTITUTION}")
        raw = [psql_timed(update) for _ in range(3)]

        # correctness (not time): the service placed what the raw CASE places
        raw_counts = dict(db.execute(f"SELECT queue_id, count(*) FROM {SCRATCH}.assignments_copy "
                                     f"WHERE queue_id IS NOT NULL GROUP BY 1").fetchall())
        final = runs[-1][2]
        assert {int(k): v for k, v in final["counts"].items()} == raw_counts
        assert final["unplaced"] == REBUILD_ACCOUNTS - sum(raw_counts.values())
        assert {x["queue_id"]: x["accounts"] for x in simulation["queues"]} == raw_counts
        assert runs[1][2]["collector_changes"] == 0

        best_raw = min(raw)
        steady = statistics.median(t for label, t, _ in runs[1:])
        rows = [(f"raw psql UPDATE ... FROM, same CASE, run {i + 1}", f"{t:.2f}",
                 f"{t / best_raw:.2f}") for i, t in enumerate(raw)]
        rows += [(label, f"{t:.2f}", f"{t / best_raw:.2f}") for label, t, _ in runs]
        rows.append(("simulate_strategy (no writes)", f"{simulated:.2f}",
                     f"{simulated / best_raw:.2f}"))
        counts = ", ".join(f"{spec['name']}: {raw_counts.get(qid, 0):,}"
                           for spec, qid in zip(SIX_QUEUES, queue_ids))
        print_rows(
            f"rebuild of {REBUILD_ACCOUNTS:,} accounts, 6 queues, {len(REBUILD_AGENTS)} "
            f"collectors (facts generated in {generated:.1f} s)",
            ("path", "seconds", "x raw"), rows,
            [f"  steady-state service median {steady:.2f} s = {steady / best_raw:.2f}x the "
             f"best raw UPDATE (target <= 1.5x)",
             f"  placed: {counts}; unplaced: {final['unplaced']:,}",
             "  the raw UPDATE only computes the first-match CASE into an unindexed copy; the "
             "service also ranks each queue (window sorts), picks collectors by policy, diffs "
             "the placement against queues.assignments (writing only what changed: nothing in "
             "the steady state), snapshots the day's totals and writes its events in the same "
             "transaction"])
    finally:
        cleanup(db, [REBUILD_INSTITUTION])
        drain_outbox(db, mark)


# --- (b) the next-account pull ---------------------------------------------------------------

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


@contextmanager
def rpc_puller(agent_id):
    identity = signed(agent_id, {"queues.work"}, (PULL_INSTITUTION,))
    with ClusterRpcProxy(settings().nameko, context_data=identity, timeout=60) as proxy:
        yield proxy.queues.next_account


def http_puller(base_url, tokens):
    @contextmanager
    def client(agent_id):
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {tokens[agent_id]}"

            def pull():
                response = session.post(base_url + NEXT_PATH, timeout=60)
                if response.status_code == 204:
                    return None
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                return response.json()
            yield pull
    return client


def pgbench(clients: int, seconds: float, rate: float | None, workdir: Path) -> Result:
    """pgbench with the raw SKIP LOCKED pull; latencies from its per-transaction log."""
    script = workdir / "pull.sql"
    script.write_text(
        "\\set agent random(1, 100)\n"
        f"UPDATE {SCRATCH}.pull_pool SET leased_by = :agent, leased_at = now()\n"
        f"WHERE account_id = (SELECT account_id FROM {SCRATCH}.pull_pool\n"
        f"                    WHERE leased_by IS NULL ORDER BY rank LIMIT 1\n"
        f"                    FOR UPDATE SKIP LOCKED)\n"
        "RETURNING account_id;\n")
    for old in workdir.glob("pgbench_log*"):
        old.unlink()
    command = ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
               "-f", str(script), "-l", "--log-prefix", str(workdir / "pgbench_log")]
    if rate:
        command += ["-R", str(rate)]
    out = subprocess.run(command, env=_libpq_env(), capture_output=True, text=True,
                         check=True, cwd=workdir).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    latencies = []
    for log in workdir.glob("pgbench_log*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            latencies.append(int(fields[2]) / 1e6)   # microseconds (from the due time if -R)
    label = "raw SKIP LOCKED, pgbench" + (f" -R {rate:g}" if rate else "")
    result = Result(label, clients, latencies=latencies, elapsed=len(latencies) / tps,
                    note="UPDATE ... WHERE id = (SELECT ... ORDER BY rank LIMIT 1 FOR UPDATE "
                         "SKIP LOCKED) on an indexed scratch table")
    return result


def reset_raw_pool(db) -> None:
    db.execute(f"DROP TABLE IF EXISTS {SCRATCH}.pull_pool")
    db.execute(f"CREATE TABLE {SCRATCH}.pull_pool (account_id bigint PRIMARY KEY, rank int "
               f"NOT NULL, leased_by int, leased_at timestamptz)")
    db.execute(f"INSERT INTO {SCRATCH}.pull_pool SELECT i, i FROM generate_series(1, "
               f"{RAW_POOL_ROWS}) i")
    db.execute(f"CREATE INDEX ON {SCRATCH}.pull_pool (rank) WHERE leased_by IS NULL")
    db.execute(f"VACUUM ANALYZE {SCRATCH}.pull_pool")


def free_connections(db) -> int:
    return db.execute("SELECT current_setting('max_connections')::int - count(*) "
                      "FROM pg_stat_activity").fetchone()[0]


def bench_users(db, stack_url) -> tuple[dict, list[int], int | None]:
    """100 real agent users (one precomputed Argon2 hash) with bearer tokens from
    /api/v1/auth/token: agent id -> token, and what to remove after."""
    from auth.credentials import hash_password

    profile_id = db.execute(
        "INSERT INTO auth.profiles (name, description, permissions) VALUES (%s, %s, %s) "
        "RETURNING id", [f"bench-queues-{os.getpid()}", "benchmark", ["queues.work"]]
    ).fetchone()[0]
    users = db.execute(
        "INSERT INTO auth.users (username, display_name, profile_id, password_hash, "
        "password_changed_at, institutions) SELECT 'bench-q-' || g, 'Bench ' || g, %s, %s, "
        "now(), %s FROM generate_series(1, %s) g RETURNING id",
        [profile_id, hash_password(PASSWORD), [PULL_INSTITUTION], AGENTS]).fetchall()
    ids = [u for (u,) in users]
    tokens = {}
    for n, user_id in enumerate(ids, 1):
        response = requests.post(f"{stack_url}/api/v1/auth/token", timeout=60,
                                 json={"username": f"bench-q-{n}", "password": PASSWORD})
        response.raise_for_status()
        tokens[user_id] = response.json()["access_token"]
    return tokens, ids, profile_id


def remove_users(db, ids, profile_id) -> None:
    if not ids:
        return
    referencing = db.execute("""
        SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND c.confrelid = 'auth.users'::regclass""").fetchall()
    for table, column in referencing:
        db.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [ids])
    db.execute("DELETE FROM auth.audit_log WHERE target_user_id = ANY(%s)", [ids])
    db.execute("DELETE FROM auth.users WHERE id = ANY(%s)", [ids])
    db.execute("DELETE FROM auth.profiles WHERE id = %s", [profile_id])


def double_leases(db, queue_id) -> tuple[int, int]:
    """(pulls of an account while it was still leased, accounts pulled more than once).
    The log's ids give the true order of one account's events: a pull logs after its lease
    insert, which waits for (or conflicts with) the previous holder's; ``at`` is only when
    each transaction began."""
    overlapping = db.execute("""
        SELECT count(*) FROM (
            SELECT event, lag(event) OVER w AS previous FROM queues.work_log
            WHERE queue_id = %s WINDOW w AS (PARTITION BY account_id ORDER BY id)) x
        WHERE event = 'pulled' AND previous = 'pulled'""", [queue_id]).fetchone()[0]
    repeated = db.execute("""
        SELECT count(*) FROM (SELECT account_id FROM queues.work_log
                              WHERE queue_id = %s AND event = 'pulled'
                              GROUP BY 1 HAVING count(*) > 1) x""", [queue_id]).fetchone()[0]
    return overlapping, repeated


def test_next_account_with_100_agents_versus_raw_skip_locked(stack_url, bench_limits, db):
    seconds = min(PHASE_SECONDS, bench_limits["seconds"])
    cleanup(db, [PULL_INSTITUTION])
    mark = outbox_mark(db)
    user_ids, profile_id = [], None
    workdir = Path(tempfile.mkdtemp(prefix="bench-queues-"))
    results, notes, handed = [], [], []
    try:
        # raw first, while the stack holds few connections (max_connections bounds pgbench)
        db.execute(f"CREATE SCHEMA {SCRATCH}")
        clients = min(AGENTS, free_connections(db) - 6)
        if clients < AGENTS:
            notes.append(f"  pgbench ran {clients} clients, not {AGENTS}: PostgreSQL's "
                         f"max_connections leaves no more beside the running stack")
        for rate in (None, AGENTS * PACED_PER_AGENT):
            reset_raw_pool(db)
            results.append(pgbench(clients, seconds, rate, workdir))

        # the queue: 100,000 accounts nobody holds (manual policy, no previous collector)
        db.execute(FACTS_SQL, {"base": PULL_BASE, "institution": PULL_INSTITUTION,
                               "n": PULL_ACCOUNTS})
        db.execute("INSERT INTO queues.institution_rules (institution_id, contact_from, "
                   "contact_until) VALUES (%s, '00:00', '23:59:59')", [PULL_INSTITUTION])
        gateway_has_pull = requests.post(stack_url + NEXT_PATH, timeout=30).status_code != 404
        tokens = {}
        if gateway_has_pull:
            tokens, user_ids, profile_id = bench_users(db, stack_url)
        members = list(RPC_AGENTS) + user_ids
        with db.cursor() as cur:
            cur.executemany("INSERT INTO queues.team_members (team_id, agent_id) VALUES (%s, %s)",
                            [(PULL_TEAM, a) for a in members])
        db.execute("ANALYZE queues.account_facts")
        with ClusterRpcProxy(settings().nameko, context_data=SUPERVISOR,
                             timeout=RPC_TIMEOUT) as proxy:
            saved = proxy.queues.save_strategy({
                "institution_id": PULL_INSTITUTION, "name": "Bench pull", "queues": [
                    q("Pozo", {"all": []}, [{"field": "days_past_due"}, {"field": "balance"}],
                      "manual", PULL_TEAM)]})
            queue_id = saved["queues"][0]["id"]
            placed = proxy.queues.apply_strategy(saved["id"])
        assert placed["counts"] == {str(queue_id): PULL_ACCOUNTS}

        paths = [("next_account via ClusterRpcProxy per agent (no HTTP)", RPC_AGENTS,
                  rpc_puller)]
        if gateway_has_pull:
            paths.insert(0, (f"gateway POST {NEXT_PATH}", tuple(user_ids),
                             http_puller(stack_url, tokens)))
        else:
            notes.append(f"  the gateway answers 404 for POST {NEXT_PATH}: no HTTP row; the "
                         f"service is measured through standalone RPC proxies instead")
        for label, agents, client in paths:
            for rate in (None, PACED_PER_AGENT):
                suffix = f" paced {len(agents) * rate:g}/s" if rate else " closed loop"
                result, pairs = run_agents(label + suffix, agents, client, seconds=seconds,
                                           paced_rate=rate)
                results.append(result)
                handed += pairs

        overlapping, repeated = double_leases(db, queue_id)
        by_account = {}
        crossed = sum(1 for account, agent in handed
                      if by_account.setdefault(account, agent) != agent)
        print_table(results, title=(
            f"next account: {AGENTS} agents on one shared queue of {PULL_ACCOUNTS:,} accounts, "
            f"{seconds:g} s per row; targets p99 < 100 ms, >= 200 pulls/s\n"
            f"machine: {os.cpu_count()} CPUs shared by clients, gateway, services, PostgreSQL, "
            f"RabbitMQ; the queues service runs 10 workers in one process"))
        print("\n".join(notes + [
            f"  double leases after the run: {overlapping} pulls of a still-leased account, "
            f"{repeated} accounts pulled twice, {crossed} accounts handed to two agents "
            f"(work log of {len(handed)} pulls)",
            "  closed loop: every agent pulls again as soon as the last account is finished "
            "(latency ~ agents / throughput); paced: 2 pulls/s per agent, each timed from when "
            "it was due",
            "  each pull is followed, untimed, by finishing the account in SQL (lease ended, "
            "callback tomorrow, 'worked' logged)"]))

        assert overlapping == repeated == crossed == 0
        failed = [f"{r.label}: {r.errors} errors ({r.first_error})" for r in results if r.errors]
        assert not failed, failed
        assert all(r.count for r in results)
    finally:
        remove_users(db, user_ids, profile_id)
        cleanup(db, [PULL_INSTITUTION])
        drain_outbox(db, mark)
        shutil.rmtree(workdir, ignore_errors=True)
