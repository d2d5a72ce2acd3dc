"""The queues service under load, against the running stack (``make bench``):

(a) rebuild: 1,000,000 synthetic accounts (institution 9001) placed by a 6-queue
    strategy through ``queues.apply_strategy`` (first apply, then re-applies of the
    steady state), versus ONE raw ``UPDATE ... FROM`` in psql with the same CASE
    (the conditions compiled by ``queues.rules``) over an unindexed scratch copy,
    in the same run. Targets (issue 22): the first apply within 3x of the raw statement,
    the steady state within 1.2x.

(b) the next-account pull with 100 agents on one shared queue (100,000 accounts of
    institution 9002, nobody's until pulled): through the gateway (``POST
    /api/v1/queues/next``) when it exists, else through a standalone ClusterRpcProxy
    per agent thread (labelled so), back to back ("closed") and paced at 2 pulls/s per
    agent ("200/s offered"), versus pgbench running a raw ``UPDATE ... WHERE id =
    (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)`` script on a scratch table the same
    ways, and a bearer-token ping by the same agents (the floor of any authenticated
    request). Target (issue 22): the pull through the gateway >= 0.7x the ping's throughput,
    0 double leases. After each pull the harness
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
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from nameko.standalone.rpc import ClusterRpcProxy

from recaudo_common.config import settings

from .bench import (PING_PATH, Result, bearer_ping, measure, print_floor_ratio,
                    print_table)

from .queues_world import (  # noqa: F401 (db: the module's fixture)
    AGENTS, FACTS_SQL, NEXT_PATH, PACED_PER_AGENT, PASSWORD, PHASE_SECONDS, PULL_ACCOUNTS,
    PULL_BASE, PULL_INSTITUTION, PULL_TEAM, RAW_POOL_ROWS, REBUILD_ACCOUNTS, REBUILD_AGENTS,
    REBUILD_BASE, REBUILD_INSTITUTION, REBUILD_TEAM, RPC_AGENTS, RPC_TIMEOUT, SCRATCH,
    SIX_QUEUES, SUPERVISOR, _libpq_env, cleanup, db, drain_outbox, outbox_mark, print_rows,
    psql_timed, q, raw_case, register_institution, run_agents, signed)


def test_rebuild_of_a_million_accounts_versus_one_raw_update(stack_url, db):
    cleanup(db, [REBUILD_INSTITUTION])
    register_institution(db, REBUILD_INSTITUTION)
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
            [f"  first apply {runs[0][1]:.2f} s = {runs[0][1] / best_raw:.2f}x the best raw "
             f"UPDATE (target <= 3x); steady-state service median {steady:.2f} s = "
             f"{steady / best_raw:.2f}x (target <= 1.2x)",
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
    register_institution(db, PULL_INSTITUTION)
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
                if label.startswith("gateway") and rate is None:
                    pulled_over_http = len(results) - 1
                handed += pairs

        floor = None
        if gateway_has_pull:
            floor = measure(f"gateway GET {PING_PATH} (bearer floor)",
                            bearer_ping(stack_url, tokens.values()), concurrency=AGENTS,
                            requests=bench_limits["requests"], seconds=seconds)
            results.append(floor)

        overlapping, repeated = double_leases(db, queue_id)
        by_account = {}
        crossed = sum(1 for account, agent in handed
                      if by_account.setdefault(account, agent) != agent)
        print_table(results, title=(
            f"next account: {AGENTS} agents on one shared queue of {PULL_ACCOUNTS:,} accounts, "
            f"{seconds:g} s per row; target >= 0.7x the bearer ping at {AGENTS} clients\n"
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
        if floor is not None:
            print_floor_ratio(results[pulled_over_http], floor, 0.7)

        assert overlapping == repeated == crossed == 0
        failed = [f"{r.label}: {r.errors} errors ({r.first_error})" for r in results if r.errors]
        assert not failed, failed
        assert all(r.count for r in results)
    finally:
        remove_users(db, user_ids, profile_id)
        cleanup(db, [PULL_INSTITUTION])
        drain_outbox(db, mark)
        shutil.rmtree(workdir, ignore_errors=True)
