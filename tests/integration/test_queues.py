"""The queues service over RabbitMQ against the real test database: conditions run in
PostgreSQL versus a Python filter, first-match placement, simulation versus rebuild,
champion/challenger, a campaign, the four assignment policies, the next-account pull
(contact policy, leases, expiry), 50 agents pulling at once, refusals, events and the
facts projection.

The queues tables are saved aside for the module and restored after (and truncated
around every test); each test starts from ``world``: 2,000 synthetic accounts in
institution 1 and 300 in institution 2 inserted set-based with known facts, teams of
agents and a 00:00-23:59:59 contact window (so nothing depends on the clock except the
one test that narrows it). Callers are signed identities, as the gateway would send.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, time as clock, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import eventlet
import psycopg
import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from queues import contracts as queue_contracts
from queues import rules, working
from queues.models import AccountFacts
from queues.service import QueuesService
from recaudo_common import contracts
from recaudo_common.config import settings
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import counting, fire_together, record, scalar, sql, wait_for

BASE = 770_000_000            # account ids BASE+1 .. BASE+2000 (institution 1)
N1, N2 = 2000, 300            # accounts in institution 1 and 2 (BASE+5001 ..)
INST2_FIRST = BASE + 5001
ZONE = "America/Mexico_City"

TEAM1 = (101, 102, 103, 104)                  # round robin / balance weighted
TEAM2 = (201, 202, 203)                       # challenger arm, preventive campaign
TEAM3 = {301: 200, 302: 100, 303: 100}        # capacity
CROWD_TEAM, CROWD = 9, tuple(range(1001, 1051))   # 50 agents on one queue
SUPERVISOR = 500

QUEUE_TABLES = ("account_facts", "institution_rules", "strategies", "queues", "assignments",
                "leases", "team_members", "work_log", "outbox", "processed_events")
SAVED = "queues_test_saved"
SEQUENCES = (("strategies", "id"), ("queues", "id"), ("work_log", "id"), ("outbox", "id"))
EVERYTHING = {"all": []}


# --- plumbing ----------------------------------------------------------------------

def signed(user_id, permissions, institutions=(1,), profile="Supervisor"):
    return {"identity": sign(Identity(user_id=user_id, username=f"user{user_id}", profile=profile,
                                      permissions=frozenset(permissions),
                                      institutions=institutions))}


def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _restore(conn) -> None:
    """Put the saved rows back (the tables' order respects their foreign keys)."""
    conn.execute(text("TRUNCATE " + ", ".join(f"queues.{t}" for t in QUEUE_TABLES)
                      + " CASCADE"))
    for table in QUEUE_TABLES:
        conn.execute(text(f"INSERT INTO queues.{table} SELECT * FROM {SAVED}.{table}"))
    for table, column in SEQUENCES:
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('queues.{table}', '{column}'),"
                          f" coalesce((SELECT max({column}) FROM queues.{table}), 0) + 1, false)"))
    conn.execute(text(f"DROP SCHEMA {SAVED} CASCADE"))


@pytest.fixture(scope="module")
def saved_tables(migrated_database, engine):
    """Save the queues tables aside, give the module empty ones, restore them after.
    A run that died before restoring left its copy behind: that copy is restored first."""
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                        {"s": SAVED}).first():
            _restore(conn)
        conn.execute(text(f"CREATE SCHEMA {SAVED}"))
        for table in QUEUE_TABLES:
            conn.execute(text(f"CREATE TABLE {SAVED}.{table} AS TABLE queues.{table}"))
    yield
    with engine.begin() as conn:
        _restore(conn)


def _truncate(engine) -> None:
    sql(engine, "TRUNCATE " + ", ".join(f"queues.{t}" for t in QUEUE_TABLES)
        + " RESTART IDENTITY CASCADE")


FACTS_SQL = """
INSERT INTO queues.account_facts
    (account_id, institution_id, debtor_id, stage, status_id, days_past_due, balance,
     overdue_amount, product, state, time_zone, next_due_date, last_contact_at,
     last_result_code, open_promise, broken_promise)
SELECT :base + i, :institution, :base + i,
       CASE WHEN i % 10 = 0 THEN 'litigation' WHEN i % 4 = 0 THEN 'current'
            ELSE 'delinquent' END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE i % 4 END,
       CASE WHEN i % 4 = 0 AND i % 10 <> 0 THEN 0 ELSE 1 + (i * 37) % 180 END,
       round(((i * 7919) % 100000)::numeric + (i % 100) / 100.0, 2),
       least(round(((i * 7919) % 100000)::numeric + (i % 100) / 100.0, 2), (i % 50) * 100),
       (ARRAY['Tarjeta', 'Préstamo', 'Automotriz'])[i % 3 + 1],
       CASE WHEN i % 7 = 0 THEN NULL ELSE (ARRAY['Jalisco', 'Sonora', 'Yucatán'])[i % 3 + 1] END,
       :zone,
       CASE WHEN i % 6 = 0 THEN NULL ELSE current_date + (i * 13) % 30 END,
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE now() - make_interval(days => i % 20, hours => 1) END,
       CASE WHEN i % 2 = 0 THEN 'NC' END,
       i % 11 = 0, i % 13 = 0
FROM generate_series(1, :n) AS i
"""


def insert_facts(engine, base, institution, n):
    sql(engine, FACTS_SQL, base=base, institution=institution, n=n, zone=ZONE)


@pytest.fixture
def world(saved_tables, engine):
    _truncate(engine)
    insert_facts(engine, BASE, 1, N1)
    insert_facts(engine, INST2_FIRST - 1, 2, N2)
    members = ([(1, a, 100) for a in TEAM1] + [(2, a, 100) for a in TEAM2]
               + [(3, a, c) for a, c in TEAM3.items()] + [(CROWD_TEAM, a, 100) for a in CROWD]
               + [(7, 700, 100)])  # team 7: institution 2's collector
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO queues.team_members (team_id, agent_id, capacity) "
                          "VALUES (:t, :a, :c)"), [{"t": t, "a": a, "c": c} for t, a, c in members])
        conn.execute(text("INSERT INTO queues.institution_rules "
                          "(institution_id, time_zone, contact_from, contact_until) "
                          "VALUES (1, :z, '00:00', '23:59:59'), (2, :z, '00:00', '23:59:59')"),
                     {"z": ZONE})
    yield
    _truncate(engine)


@pytest.fixture
def institutions(engine):
    """Institutions 1 and 2 in the portfolio (a strategy's institution is checked with the
    portfolio before it is saved), added when missing and removed after."""
    added = [i for i in (1, 2)
             if not sql(engine, "SELECT 1 FROM portfolio.institutions WHERE id = :i", i=i)]
    for i in added:
        sql(engine, "INSERT INTO portfolio.institutions (id, code, name) VALUES (:i, :c, :n)",
            i=i, c=f"QTEST{i}", n=f"Institución de prueba {i}")
    yield
    for i in added:
        sql(engine, "DELETE FROM portfolio.institutions WHERE id = :i", i=i)


@pytest.fixture
def queues_service(world, institutions, container_factory, rabbit_config):
    container = container_factory(QueuesService, rabbit_config)
    container.start()
    container_factory(QuietPortfolioService, rabbit_config).start()
    return container


@pytest.fixture
def supervisor(queues_service, rpc_proxy):
    return rpc_proxy(signed(SUPERVISOR, {"queues.manage", "queues.work"})).queues


@pytest.fixture
def agent(queues_service, rpc_proxy):
    """``agent(101)``: the queues proxy of a collector (one proxy per agent, cached)."""
    cache = {}

    def make(user_id, institutions=(1,)):
        if (user_id, institutions) not in cache:
            cache[user_id, institutions] = rpc_proxy(signed(
                user_id, {"queues.work"}, institutions, profile="Gestor")).queues
        return cache[user_id, institutions]
    return make


def queue(name, conditions=EVERYTHING, sort=None, team_id=1, policy="round_robin"):
    return {"name": name, "conditions": conditions, "team_id": team_id, "policy": policy,
            "sort": sort or [{"field": "account_id", "direction": "asc"}]}


def strategy(proxy, name, queues, institution_id=1, **extra):
    saved = proxy.save_strategy({"institution_id": institution_id, "name": name,
                                 "queues": queues, **extra})
    return saved["id"], [q["id"] for q in saved["queues"]]


def facts(engine, institution=1) -> dict[int, dict]:
    """Every account's facts as Python values, with the derived fields computed here
    from the database's own clock."""
    with engine.connect() as conn:
        today, now = conn.execute(text("SELECT current_date, now()")).one()
        rows = conn.execute(select(AccountFacts.__table__).where(
            AccountFacts.institution_id == institution)).mappings().all()
    out = {}
    for r in rows:
        row = dict(r)
        row["days_to_next_due"] = (r["next_due_date"] - today).days if r["next_due_date"] else None
        row["days_since_last_contact"] = ((now - r["last_contact_at"]).days
                                          if r["last_contact_at"] else None)
        out[r["account_id"]] = row
    return out


def assignments(engine, institution=1) -> dict[int, tuple]:
    """account -> (queue, arm, rank, agent)."""
    return {a: (q, arm, rank, agent) for a, q, arm, rank, agent in sql(
        engine, "SELECT account_id, queue_id, arm, rank, agent_id FROM queues.assignments "
                "WHERE institution_id = :i", i=institution)}


def outbox(engine, event_type=None):
    rows = sql(engine, "SELECT event_type, payload FROM queues.outbox ORDER BY id")
    return [p for t, p in rows if event_type in (None, t)]


# --- a Python filter with the operators' documented semantics -----------------------
# NULL matches no comparison, is "distinct" from any value (ne) and is "not in" any list.

def _value(kind, v):
    if kind == "money":
        return Decimal(str(v)).quantize(Decimal("0.01"))
    if kind == "int":
        return int(v)
    return v


def matches(node, row) -> bool:
    if "all" in node:
        return all(matches(c, row) for c in node["all"])
    if "any" in node:
        return any(matches(c, row) for c in node["any"]) if node["any"] else True
    kind, op, v = queue_contracts.FIELDS[node["field"]].kind, node["op"], row[node["field"]]
    if op == "is_set":
        return v is not None
    if op == "is_not_set":
        return v is None
    if op == "ne":
        return v != _value(kind, node["value"])
    if op == "not_in":
        return v not in [_value(kind, x) for x in node["value"]]
    if v is None:
        return False
    if op == "in":
        return v in [_value(kind, x) for x in node["value"]]
    if op == "between":
        low, high = (_value(kind, x) for x in node["value"])
        return low <= v <= high
    x = _value(kind, node["value"])
    return {"eq": v == x, "lt": v < x, "lte": v <= x, "gt": v > x, "gte": v >= x}[op]


def L(field, op, value=None):
    return {"field": field, "op": op, **({} if value is None else {"value": value})}


OPERATOR_CASES = [
    L("days_past_due", "eq", 0), L("stage", "eq", "litigation"), L("open_promise", "eq", True),
    L("balance", "eq", "79190.10"), L("product", "eq", "Préstamo"),
    L("status_id", "ne", 2), L("product", "ne", "Automotriz"), L("broken_promise", "ne", True),
    L("state", "ne", "Sonora"),
    L("days_past_due", "lt", 30), L("balance", "lt", "25000.5"), L("status_id", "lt", 2),
    L("days_to_next_due", "lte", 5), L("overdue_amount", "lte", 1000),
    L("days_since_last_contact", "gt", 7), L("overdue_amount", "gt", "500"),
    L("status_id", "gte", 2), L("days_past_due", "gte", 90),
    L("days_past_due", "between", [30, 90]), L("balance", "between", ["1000", "50000.75"]),
    L("days_to_next_due", "between", [0, 3]), L("days_since_last_contact", "between", [2, 4]),
    L("state", "in", ["Jalisco", "Sonora"]), L("status_id", "in", [1, 3]),
    L("stage", "in", ["current", "litigation"]),
    L("state", "not_in", ["Jalisco"]), L("last_result_code", "not_in", ["NC"]),
    L("status_id", "not_in", [0, 1]),
    L("state", "is_set"), L("status_id", "is_not_set"), L("days_to_next_due", "is_set"),
    L("days_since_last_contact", "is_not_set"), L("last_result_code", "is_set"),
    {"all": [L("stage", "eq", "delinquent"),
             {"any": [L("days_past_due", "gt", 120), L("balance", "gte", 90000)]}]},
    {"any": [L("open_promise", "eq", True), {"all": [L("state", "is_not_set"),
                                                     L("status_id", "ne", 1)]}]},
    {"any": []}, {"all": []},
]


def test_each_operator_selects_in_postgresql_what_a_python_filter_selects(world, engine):
    rows = facts(engine)
    assert len(rows) == N1
    covered = set()
    with engine.connect() as conn:
        for node in OPERATOR_CASES:
            assert queue_contracts.condition_problems(node) == {}, node
            got = set(conn.execute(select(AccountFacts.account_id).where(
                AccountFacts.institution_id == 1, rules.compile_condition(node))).scalars())
            expected = {a for a, row in rows.items() if matches(node, row)}
            assert got == expected, (node, len(got), len(expected))
            assert got, node   # every case selects something (and not always everything)
            assert len(got) < N1 or node in ({"any": []}, {"all": []}), node
            if "op" in node:
                covered.add(node["op"])
    assert covered == set(queue_contracts.OPERATORS)


# --- placement --------------------------------------------------------------------------

def test_first_match_places_each_account_in_the_first_queue_it_matches(supervisor, engine):
    rows = facts(engine)
    severe = L("days_past_due", "gte", 90)
    late = L("days_past_due", "gte", 30)
    strategy_id, (q1, q2, q3) = strategy(supervisor, "Escalonada", [
        queue("90+", severe, sort=[{"field": "days_past_due"}, {"field": "balance"}]),
        queue("30+", late), queue("Litigio", L("stage", "eq", "litigation"))])
    result = supervisor.apply_strategy(strategy_id)
    placed = assignments(engine)

    expected = {a: (q1 if matches(severe, r) else q2 if matches(late, r)
                    else q3 if r["stage"] == "litigation" else None) for a, r in rows.items()}
    assert {a: p[0] for a, p in placed.items()} == {a: q for a, q in expected.items() if q}
    both = [a for a, r in rows.items() if matches(severe, r) and matches(late, r)]
    assert both and all(placed[a][0] == q1 for a in both)
    unplaced = sum(1 for q in expected.values() if q is None)
    assert result["unplaced"] == unplaced > 0
    assert result["counts"] == {str(q): n for q, n in Counter(
        q for q in expected.values() if q).items()}
    # ranks follow the queue's sort: days past due desc, balance desc, then account id
    in_q1 = sorted((a for a in placed if placed[a][0] == q1),
                   key=lambda a: (-rows[a]["days_past_due"], -rows[a]["balance"], a))
    assert [placed[a][2] for a in in_q1] == list(range(1, len(in_q1) + 1))
    # institution 2 is untouched
    assert assignments(engine, 2) == {}
    assert scalar(engine, "SELECT state FROM queues.strategies WHERE id = :i", i=strategy_id) \
        == "active"


def test_simulation_equals_the_rebuild_and_writes_nothing(supervisor, engine):
    strategy_id, queue_ids = strategy(supervisor, "Simulada", [
        queue("Preventiva", {"all": [L("stage", "eq", "current"),
                                     L("days_to_next_due", "lte", 5)]}, team_id=2),
        queue("Alta", L("balance", "gte", 50000), sort=[{"field": "balance"}],
              policy="balance_weighted"),
        queue("Resto", {"all": [L("stage", "ne", "litigation")]}, team_id=3, policy="capacity")])
    simulation = supervisor.simulate_strategy(strategy_id)

    # nothing written: no assignment, no event, still a draft
    assert scalar(engine, "SELECT count(*) FROM queues.assignments") == 0
    assert outbox(engine) == []
    assert scalar(engine, "SELECT state FROM queues.strategies WHERE id = :i",
                  i=strategy_id) == "draft"

    supervisor.apply_strategy(strategy_id)
    actual = {q: (n, str(b)) for q, n, b in sql(engine, """
        SELECT a.queue_id, count(*), sum(f.balance) FROM queues.assignments a
        JOIN queues.account_facts f USING (account_id) GROUP BY a.queue_id""")}
    simulated = {q["queue_id"]: (q["accounts"], q["balance"]) for q in simulation["queues"]}
    assert simulated == actual and set(actual) == set(queue_ids)
    # the day's snapshot of what each queue holds is the applied placement's totals
    assert {q: (n, str(b)) for q, n, b in sql(engine, """
        SELECT queue_id, sum(accounts), sum(balance) FROM queues.assigned_daily
        WHERE institution_id = 1 AND day = CAST(timezone(COALESCE((SELECT time_zone
              FROM queues.institution_rules WHERE institution_id = 1), 'America/Mexico_City'),
              now()) AS date)   -- the institution's day, not the server's
        GROUP BY queue_id""")} == actual
    placed = assignments(engine)
    assert simulation["unplaced"] == N1 - len(placed)
    for q in simulation["queues"]:   # the samples are the queue's first ranks, as applied
        assert [(s["account_id"], s["rank"], s["agent_id"]) for s in q["sample"]] == sorted(
            ((a, p[2], p[3]) for a, p in placed.items() if p[0] == q["queue_id"] and p[2] <= 5),
            key=lambda s: s[1])
    assert sum(m["accounts"] for m in simulation["moves"]) == len(placed)
    # simulated again after applying: nothing would move
    again = supervisor.simulate_strategy(strategy_id)
    assert again["moves"] == [] and again["leaving_queues"] == 0
    assert {q["queue_id"]: (q["accounts"], q["balance"]) for q in again["queues"]} == actual


def test_champion_challenger_split_is_close_to_its_share_and_stable(supervisor, agent, engine):
    challenger_id, (q_challenger,) = strategy(supervisor, "Retadora", [
        queue("Retadora", team_id=2)])
    champion_id, (q_champion,) = strategy(supervisor, "Campeona", [queue("Campeona")],
                                          challenger_id=challenger_id, challenger_share=20)
    supervisor.apply_strategy(champion_id)
    first = assignments(engine)
    assert len(first) == N1
    arms = Counter(p[1] for p in first.values())
    share = arms["challenger"] / N1 * 100
    assert 17 <= share <= 23, share
    assert all((p[0] == q_challenger) == (p[1] == "challenger") for p in first.values())
    assert {p[0] for p in first.values()} == {q_champion, q_challenger}

    stamps = dict(sql(engine, "SELECT account_id, assigned_at FROM queues.assignments"))
    supervisor.rebuild_queues(1)
    second = assignments(engine)
    assert second == first
    # an unchanged placement is not rewritten: it keeps when it was assigned
    assert dict(sql(engine, "SELECT account_id, assigned_at FROM queues.assignments")) == stamps
    supervisor.apply_strategy(champion_id)
    assert {a: p[1] for a, p in assignments(engine).items()} == {a: p[1] for a, p in first.items()}

    # the challenger's accounts are worked like any others (its strategy is not "active")
    pulled = agent(TEAM2[0]).next_account()
    assert pulled is not None and pulled["queue_id"] == q_challenger
    assert first[pulled["account_id"]][1] == "challenger"


def test_a_preventive_campaign_selects_the_current_accounts_due_within_five_days(
        supervisor, engine):
    rows = facts(engine)
    strategy_id, (q_preventive, q_rest) = strategy(supervisor, "Campaña preventiva", [
        queue("Preventiva", {"all": [L("stage", "eq", "current"),
                                     L("days_to_next_due", "lte", 5)]}, team_id=2,
              sort=[{"field": "days_to_next_due", "direction": "asc"}]),
        queue("Cobranza", L("stage", "ne", "current"))])
    supervisor.apply_strategy(strategy_id)
    placed = assignments(engine)
    expected = {a for a, r in rows.items() if r["stage"] == "current"
                and r["next_due_date"] is not None and r["days_to_next_due"] <= 5}
    assert expected and {a for a, p in placed.items() if p[0] == q_preventive} == expected
    # the nearest due date first
    ranked = sorted(expected, key=lambda a: placed[a][2])
    assert [rows[a]["days_to_next_due"] for a in ranked] == sorted(
        rows[a]["days_to_next_due"] for a in expected)


# --- assignment policies -----------------------------------------------------------------

def _per_agent(placed, queue_id):
    by_agent = defaultdict(list)
    for a, (q, _, _, agent_id) in placed.items():
        if q == queue_id:
            by_agent[agent_id].append(a)
    return by_agent


def test_round_robin_splits_evenly_in_rank_order(supervisor, engine):
    strategy_id, (q,) = strategy(supervisor, "RR", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    placed = assignments(engine)
    counts = {a: len(ids) for a, ids in _per_agent(placed, q).items()}
    assert set(counts) == set(TEAM1) and max(counts.values()) - min(counts.values()) <= 1
    assert all(agent_id == TEAM1[(rank - 1) % len(TEAM1)]
               for _, _, rank, agent_id in placed.values())


def test_balance_weighted_gives_agents_similar_balance_totals(supervisor, engine):
    rows = facts(engine)
    strategy_id, (q,) = strategy(supervisor, "Por saldo", [
        queue("Todas", policy="balance_weighted")])
    supervisor.apply_strategy(strategy_id)
    totals = {agent_id: sum(rows[a]["balance"] for a in ids)
              for agent_id, ids in _per_agent(assignments(engine), q).items()}
    assert set(totals) == set(TEAM1)
    mean = sum(totals.values()) / len(totals)
    assert all(abs(t - mean) / mean < Decimal("0.02") for t in totals.values()), totals


def test_capacity_respects_the_agents_ratios(supervisor, engine):
    strategy_id, (q,) = strategy(supervisor, "Capacidad", [
        queue("Todas", team_id=3, policy="capacity")])
    supervisor.apply_strategy(strategy_id)
    counts = {a: len(ids) for a, ids in _per_agent(assignments(engine), q).items()}
    total_capacity = sum(TEAM3.values())
    for agent_id, capacity in TEAM3.items():
        assert abs(counts[agent_id] / N1 - capacity / total_capacity) < 0.02, counts


def test_manual_keeps_the_previous_agent_and_leaves_new_accounts_to_the_team(
        supervisor, engine):
    first_id, _ = strategy(supervisor, "Reparto", [queue("Todas")])
    supervisor.apply_strategy(first_id)
    before = {a: p[3] for a, p in assignments(engine).items()}
    insert_facts(engine, BASE + N1, 1, 10)   # ten accounts arrive after the first rebuild
    manual_id, (q,) = strategy(supervisor, "Manual", [queue("Todas", team_id=2,
                                                            policy="manual")])
    result = supervisor.apply_strategy(manual_id)
    after = assignments(engine)
    assert len(after) == N1 + 10 and all(p[0] == q for p in after.values())
    assert {a: after[a][3] for a in before} == before
    assert [after[BASE + N1 + k][3] for k in range(1, 11)] == [None] * 10
    assert result["collector_changes"] == 10   # only the new accounts were announced
    assert scalar(engine, "SELECT state FROM queues.strategies WHERE id = :i",
                  i=first_id) == "archived"


# --- the next-account pull ----------------------------------------------------------------

def set_facts(engine, account_ids, **values):
    assignments_ = ", ".join(f"{k} = :{k}" for k in values)
    sql(engine, f"UPDATE queues.account_facts SET {assignments_} WHERE account_id = ANY(:ids)",
        ids=list(account_ids), **values)


def test_next_account_skips_what_may_not_be_worked_now_and_holds_the_lease(
        supervisor, agent, engine):
    strategy_id, (q,) = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    # agent 101 has ranks 1, 5, 9, ... = accounts BASE+1, BASE+5, ... (sorted by account id)
    mine = [BASE + r for r in range(1, N1 + 1, len(TEAM1))]
    future = datetime.now(timezone.utc) + timedelta(hours=2)
    set_facts(engine, [mine[0]], callback_at=future)
    set_facts(engine, [mine[1]], open_dispute=True)
    set_facts(engine, [mine[2]], do_not_contact=True)
    set_facts(engine, [mine[3]], callback_at=datetime.now(timezone.utc) - timedelta(hours=1))
    gestor = agent(TEAM1[0])

    pulled = gestor.next_account()
    assert pulled["account_id"] == mine[3] and pulled["queue_id"] == q
    assert pulled["rank"] == 13 and pulled["debtor_id"] == mine[3] and pulled["queue"] == "Todas"
    lease = sql(engine, "SELECT agent_id, expires_at > now() + interval '15 minutes' "
                        "FROM queues.leases WHERE account_id = :a", a=mine[3])
    assert lease == [(TEAM1[0], True)]
    # a held account is answered again, not a second one
    assert gestor.next_account()["account_id"] == mine[3]
    assert scalar(engine, "SELECT count(*) FROM queues.leases") == 1

    gestor.release_account(mine[3])
    assert scalar(engine, "SELECT count(*) FROM queues.leases") == 0
    assert sql(engine, "SELECT event FROM queues.work_log ORDER BY id") == [("pulled",),
                                                                            ("released",)]
    with pytest.raises(NotFound):
        gestor.release_account(mine[3])            # not held any more
    assert gestor.next_account()["account_id"] == mine[3]   # released: it is first again
    # someone else's account is not yours to release
    with pytest.raises(NotFound):
        agent(TEAM1[1]).release_account(mine[3])

    worklist = gestor.my_worklist({"per_page": 5})
    assert worklist["total"] == len(mine)
    assert [i["account_id"] for i in worklist["items"]] == mine[:5]
    assert [i["workable"] for i in worklist["items"]] == [False, False, False, True, True]


def test_a_held_account_that_may_no_longer_be_worked_is_let_go_for_the_next(
        supervisor, agent, engine):
    """The debtor's calling hours end (or a dispute or a do-not-contact mark arrives) while
    the agent holds the account: "next account" releases it and hands out the next one."""
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    mine = [BASE + r for r in range(1, N1 + 1, len(TEAM1))]
    gestor = agent(TEAM1[0])
    assert gestor.next_account()["account_id"] == mine[0]
    set_facts(engine, [mine[0]], do_not_contact=True)
    assert gestor.next_account()["account_id"] == mine[1]
    assert sql(engine, "SELECT account_id, agent_id FROM queues.leases") == [(mine[1], TEAM1[0])]
    assert sql(engine, "SELECT account_id, event FROM queues.work_log ORDER BY id") == [
        (mine[0], "pulled"), (mine[0], "released"), (mine[1], "pulled")]
    # a held account still workable is answered again, as before
    assert gestor.next_account()["account_id"] == mine[1]


def test_frozen_queues_are_not_pulled(supervisor, agent, engine):
    strategy_id, (q_severe, q_rest) = strategy(supervisor, "Dos filas", [
        queue("90+", L("days_past_due", "gte", 90)), queue("Resto")])
    supervisor.apply_strategy(strategy_id)
    gestor = agent(TEAM1[1])
    assert supervisor.freeze_queue(q_severe) == {"queue_id": q_severe, "frozen": True}
    pulled = gestor.next_account()
    assert pulled["queue_id"] == q_rest
    gestor.release_account(pulled["account_id"])
    supervisor.freeze_queue(q_rest)
    assert gestor.next_account() is None
    supervisor.freeze_queue(q_severe, False)
    assert gestor.next_account()["queue_id"] == q_severe


def test_the_contact_window_in_the_debtors_zone_excludes_accounts(supervisor, agent, engine):
    strategy_id, _ = strategy(supervisor, "Horario", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    local = datetime.now(ZoneInfo(ZONE)).time()
    # a window that does not contain the debtors' local time now
    window = (clock(12), clock(23, 59, 59)) if local < clock(11, 59) else (clock(0), clock(11))
    sql(engine, "UPDATE queues.institution_rules SET contact_from = :f, contact_until = :u "
                "WHERE institution_id = 1", f=window[0], u=window[1])
    gestor = agent(TEAM1[2])
    assert gestor.next_account() is None
    items = gestor.my_worklist()["items"]
    assert items and not any(i["workable"] for i in items)
    # one debtor lives where it is inside the window right now: only that account is handed out
    utc_now = datetime.now(timezone.utc)
    inside = next(z for z in ("Asia/Tokyo", "Europe/Madrid", "Pacific/Auckland", "UTC",
                              "America/Anchorage", "Asia/Kolkata")
                  if window[0] <= utc_now.astimezone(ZoneInfo(z)).time() <= clock(window[1].hour,
                                                                                    0))
    account = BASE + 3 + 4 * 7   # one of agent 103's accounts, not the first
    set_facts(engine, [account], time_zone=inside)
    assert gestor.next_account()["account_id"] == account
    gestor.release_account(account)
    sql(engine, "UPDATE queues.institution_rules SET contact_from = '00:00', "
                "contact_until = '23:59:59' WHERE institution_id = 1")
    assert gestor.next_account()["account_id"] == BASE + 3


def test_when_nothing_may_be_called_now_the_outlook_says_why_and_when(supervisor, agent, engine,
                                                                     rpc_proxy):
    """Every account outside the contact window: the pull has nothing, the outlook counts
    them all as outside the hours and names the next opening (the window's start in the
    debtors' zone, within a day); a callback later is counted with its time."""
    strategy_id, _ = strategy(supervisor, "Fuera de horario", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    local = datetime.now(ZoneInfo(ZONE))
    window = (clock(12), clock(23, 59, 59)) if local.time() < clock(11, 59) else (clock(0), clock(11))
    sql(engine, "UPDATE queues.institution_rules SET contact_from = :f, contact_until = :u "
                "WHERE institution_id = 1", f=window[0], u=window[1])
    gestor = agent(TEAM1[2])
    assert gestor.next_account() is None
    later = datetime.now(timezone.utc) + timedelta(hours=3)
    set_facts(engine, [BASE + 3], callback_at=later)
    outlook = gestor.pull_outlook()
    assert outlook["waiting"] > 0 and outlook["outside_hours"] == outlook["waiting"]
    assert outlook["callbacks_later"] == 1
    assert abs((outlook["next_callback_at"] - later).total_seconds()) < 1
    opens = outlook["next_window_at"].astimezone(ZoneInfo(ZONE))
    assert opens.time() == window[0] and timedelta(0) < opens - local <= timedelta(days=1)
    sql(engine, "UPDATE queues.institution_rules SET contact_from = '00:00', "
                "contact_until = '23:59:59' WHERE institution_id = 1")
    assert gestor.pull_outlook()["outside_hours"] == 0
    with pytest.raises(PermissionDenied):
        rpc_proxy(signed(SUPERVISOR, {"queues.manage"})).queues.pull_outlook()


def test_an_expired_lease_lets_another_agent_take_the_account(supervisor, agent, engine):
    strategy_id, _ = strategy(supervisor, "Pozo común", [
        queue("Todas", team_id=CROWD_TEAM, policy="manual")])   # nobody's: any agent pulls
    supervisor.apply_strategy(strategy_id)
    first = agent(CROWD[0]).next_account()
    second = agent(CROWD[1]).next_account()
    assert (first["account_id"], second["account_id"]) == (BASE + 1, BASE + 2)
    sql(engine, "UPDATE queues.leases SET expires_at = now() - interval '1 second' "
                "WHERE account_id = :a", a=BASE + 1)
    third = agent(CROWD[2]).next_account()
    assert third["account_id"] == BASE + 1
    assert sql(engine, "SELECT agent_id FROM queues.leases WHERE account_id = :a",
               a=BASE + 1) == [(CROWD[2],)]
    # the first agent's lease is gone: they get a fresh account, not the taken one
    assert agent(CROWD[0]).next_account()["account_id"] == BASE + 3
    with pytest.raises(NotFound):
        agent(CROWD[0]).release_account(BASE + 1)


def finish(engine, account_id):
    """What working an account does to it, for these tests: the lease ends, and a callback
    tomorrow keeps it out of the next pulls."""
    sql(engine, "DELETE FROM queues.leases WHERE account_id = :a", a=account_id)
    set_facts(engine, [account_id], callback_at=datetime.now(timezone.utc) + timedelta(days=1))


def test_the_pull_order_is_queue_then_own_accounts_then_nobodys_by_rank(supervisor, agent,
                                                                        engine):
    strategy_id, (q_first, q_second) = strategy(supervisor, "Orden", [
        queue("Primera", L("days_past_due", "gte", 90), team_id=CROWD_TEAM, policy="manual"),
        queue("Segunda", team_id=CROWD_TEAM, policy="manual")])
    supervisor.apply_strategy(strategy_id)
    placed = assignments(engine)
    by_rank = {(p[0], p[2]): a for a, p in placed.items()}
    mine = [by_rank[q_first, 40], by_rank[q_first, 30], by_rank[q_second, 5]]
    sql(engine, "UPDATE queues.assignments SET agent_id = :g WHERE account_id = ANY(:ids)",
        g=CROWD[0], ids=mine)
    gestor = agent(CROWD[0])
    order = []
    for _ in range(4):
        pulled = gestor.next_account()
        order.append(pulled["account_id"])
        finish(engine, pulled["account_id"])
    # the first queue: own accounts by rank, then nobody's by rank; the second queue after
    assert order == [by_rank[q_first, 30], by_rank[q_first, 40], by_rank[q_first, 1],
                     by_rank[q_first, 2]]
    # someone else's accounts are never handed to this agent
    sql(engine, "UPDATE queues.assignments SET agent_id = :g WHERE queue_id = :q "
                "AND agent_id IS NULL", g=CROWD[1], q=q_first)
    assert gestor.next_account()["account_id"] == by_rank[q_second, 5]


def test_a_pull_checks_its_candidate_again_when_leasing_it(supervisor, engine):
    """Candidates come from the snapshot of the statement that claimed them
    (``queues.pull_candidates``); the lease is taken by a newer statement
    (``queues.pull_take``, which ``queues.next_account()`` calls next in the same
    transaction), so a change committed meanwhile (here do-not-contact on the best
    candidate) is respected."""
    strategy_id, (queue_id,) = strategy(supervisor, "Pozo", [queue("Todas", team_id=CROWD_TEAM,
                                                                   policy="manual")])
    supervisor.apply_strategy(strategy_id)
    scope = {"agent": CROWD[0], "queue": queue_id}
    with engine.connect() as conn:   # one transaction, as the pull's
        candidates = conn.execute(text(
            "SELECT queues.pull_candidates(:agent, false, ARRAY[1], :queue, false, 5)"),
            scope).scalar()
        assert candidates == [BASE + 1, BASE + 2, BASE + 3, BASE + 4, BASE + 5]
        set_facts(engine, [BASE + 1], do_not_contact=True)   # another connection, committed
        lease = conn.execute(text(
            "SELECT * FROM queues.pull_take(:agent, false, ARRAY[1], :candidates, 20)"),
            {**scope, "candidates": candidates}).mappings().one()
        conn.commit()
    assert lease["account_id"] == BASE + 2
    assert sql(engine, "SELECT account_id, agent_id FROM queues.leases") == [(BASE + 2, CROWD[0])]


def test_the_pull_in_postgresql_states_the_contact_policy_of_the_code(engine):
    """``queues.next_account()`` and its steps are PL/pgSQL written by a migration: each
    states the contact policy as ``working._READY_FACTS`` compiles it today (and "free"
    and "in force" as the outlook does), so a change of the policy
    (``recaudo_common.contact_policy``) fails here until a migration replaces them."""
    bodies = dict(sql(engine, "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = "
                              "'queues'::regnamespace AND proname IN ('next_account', "
                              "'pull_candidates', 'pull_take')"))
    assert set(bodies) == {"next_account", "pull_candidates", "pull_take"}
    for name, body in bodies.items():
        assert working._READY_FACTS in body, name
    for name in ("pull_candidates", "pull_take"):
        assert working._FREE in bodies[name], name
    for name in ("next_account", "pull_take"):
        assert working._IN_FORCE in bodies[name], name


def test_an_agent_only_pulls_within_their_institutions_and_teams(supervisor, agent, rpc_proxy,
                                                                 engine):
    strategy_id, _ = strategy(supervisor, "Todas", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    assert agent(TEAM1[0], institutions=(2,)).next_account() is None   # out of scope
    assert agent(TEAM2[0]).next_account() is None                      # not on the team
    nobody = rpc_proxy(signed(999, {"portfolio.read"}, profile="Cliente")).queues
    with pytest.raises(PermissionDenied):
        nobody.next_account()


def test_fifty_agents_pulling_at_once_get_fifty_distinct_accounts(supervisor, rpc_proxy,
                                                                   engine):
    strategy_id, _ = strategy(supervisor, "Pozo", [
        queue("Todas", team_id=CROWD_TEAM, policy="manual",
              sort=[{"field": "balance", "direction": "desc"}])])
    supervisor.apply_strategy(strategy_id)
    assert scalar(engine, "SELECT count(*) FROM queues.assignments "
                          "WHERE agent_id IS NOT NULL") == 0   # one shared pool
    pool = eventlet.GreenPool(len(CROWD))
    proxies = list(pool.imap(lambda a: rpc_proxy(signed(a, {"queues.work"}, profile="Gestor")),
                             CROWD))
    replies = [p.queues.next_account.call_async() for p in proxies]   # all in flight at once
    pulled = [r.result() for r in replies]

    ids = [p["account_id"] for p in pulled]
    assert len(set(ids)) == len(CROWD) == 50
    assert sorted(sql(engine, "SELECT agent_id FROM queues.leases")) == [(a,) for a in CROWD]
    # from the top of the queue: concurrent pulls skip each other's locked candidates
    # (at most PULL_WINDOW rows per pull in flight, 10 workers), they do not wait for them
    window = 10 * working.PULL_WINDOW + len(CROWD)
    top = [a for (a,) in sql(engine, "SELECT account_id FROM queues.assignments "
                                     "ORDER BY rank LIMIT :n", n=window)]
    assert set(ids) <= set(top)
    assert scalar(engine, "SELECT count(DISTINCT account_id) FROM queues.work_log "
                          "WHERE event = 'pulled'") == 50

    # a second lease on a leased account is refused by the database itself (primary key)
    with pytest.raises(IntegrityError) as refused:
        sql(engine, "INSERT INTO queues.leases (account_id, agent_id, expires_at) "
                    "VALUES (:a, :g, now() + interval '20 minutes')", a=ids[0], g=CROWD[-1])
    assert "pk_leases" in str(refused.value)


# --- refusals ------------------------------------------------------------------------------

def _nothing_saved(engine):
    return scalar(engine, "SELECT count(*) FROM queues.strategies") == 0


@pytest.mark.parametrize("queues_, field", [
    ([queue("x", L("saldo_total", "gt", 1))], "conditions"),
    ([queue("x", L("days_past_due", "gt", "treinta"))], "conditions"),
    ([queue("x", L("open_dispute", "eq", "sí"))], "conditions"),
    ([queue("x", L("stage", "gte", "current"))], "conditions"),
    ([queue("x", sort=[{"field": "stage"}])], "sort"),
    ([queue("x", policy="al azar")], "policy"),
])
def test_bad_conditions_are_refused_with_their_field(supervisor, engine, queues_, field):
    with pytest.raises(InvalidInput) as refused:
        strategy(supervisor, "Mala", queues_)
    assert list(refused.value.fields["queues"]["0"]) == [field], refused.value.fields
    assert _nothing_saved(engine)


def test_an_empty_strategy_and_a_team_without_agents_are_refused(supervisor, engine):
    with pytest.raises(InvalidInput) as refused:
        strategy(supervisor, "Vacía", [])
    assert list(refused.value.fields) == ["queues"]
    with pytest.raises(InvalidInput) as refused:
        strategy(supervisor, "Sin equipo", [queue("a"), queue("b", team_id=42)])
    assert refused.value.fields == {"queues.1.team_id": ["El equipo no existe o no tiene gestores"]}
    with pytest.raises(InvalidInput) as refused:
        supervisor.save_strategy("no es un objeto")
    assert _nothing_saved(engine)


def test_out_of_scope_institutions_answer_not_found(supervisor, rpc_proxy, engine):
    everywhere = rpc_proxy(signed(SUPERVISOR + 1, {"queues.manage"}, institutions=None)).queues
    other_id, _ = strategy(everywhere, "De la 2", [queue("Todas", team_id=7)], institution_id=2)
    everywhere.apply_strategy(other_id)
    placed = assignments(engine, 2)
    assert len(placed) == N2

    for call in (lambda: supervisor.rebuild_queues(2), lambda: supervisor.apply_strategy(other_id),
                 lambda: supervisor.simulate_strategy(other_id),
                 lambda: supervisor.get_strategy(other_id), lambda: supervisor.list_strategies(2),
                 lambda: strategy(supervisor, "Ajena", [queue("Todas")], institution_id=2)):
        with pytest.raises(NotFound):
            call()
    with pytest.raises(NotFound):
        supervisor.rebuild_queues(1)   # in scope, but no active strategy there yet
    assert assignments(engine, 2) == placed
    assert scalar(engine, "SELECT count(*) FROM queues.strategies") == 1


def test_a_collector_may_not_manage_strategies(supervisor, agent, engine):
    strategy_id, _ = strategy(supervisor, "Ajena", [queue("Todas")])
    gestor = agent(TEAM1[0])
    for call in (lambda: gestor.apply_strategy(strategy_id), lambda: gestor.rebuild_queues(1),
                 lambda: gestor.simulate_strategy(strategy_id),
                 lambda: strategy(gestor, "Mía", [queue("Todas")])):
        with pytest.raises(PermissionDenied):
            call()
    assert scalar(engine, "SELECT count(*) FROM queues.assignments") == 0
    assert scalar(engine, "SELECT state FROM queues.strategies") == "draft"


def _state(engine):
    return (sql(engine, "SELECT id, state, applied_at FROM queues.strategies ORDER BY id"),
            sorted(assignments(engine).items()), outbox(engine))


def test_an_apply_while_another_runs_is_a_conflict_and_changes_nothing(supervisor, rpc_proxy,
                                                                      engine):
    a_id, _ = strategy(supervisor, "A", [queue("Todas")])
    b_id, _ = strategy(supervisor, "B", [queue("Todas", team_id=2)])
    other = rpc_proxy(signed(SUPERVISOR + 2, {"queues.manage"})).queues

    # 1. another apply holds the institution's lock (here: a separate connection)
    before = _state(engine)
    with psycopg.connect(_dsn(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('queues.rebuild'), 1)")
        for call in (lambda: supervisor.apply_strategy(a_id), lambda: other.apply_strategy(b_id)):
            with pytest.raises(Conflict):
                call()
        assert _state(engine) == before
        holder.execute("SELECT pg_advisory_unlock(hashtext('queues.rebuild'), 1)")

    # 2. two supervisors at once: the first is held mid-rebuild (its writes wait on a table
    #    lock), the second is answered Conflict at once, for another strategy or the same one
    with psycopg.connect(_dsn()) as blocker:
        blocker.execute("LOCK TABLE queues.assignments IN EXCLUSIVE MODE")
        first = supervisor.apply_strategy.call_async(a_id)
        assert wait_for(lambda: scalar(engine, """
            SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
              AND objid = 1""") == 1)
        started = time.monotonic()
        for call in (lambda: other.apply_strategy(b_id), lambda: other.apply_strategy(a_id)):
            with pytest.raises(Conflict) as refused:
                call()
            assert "en curso" in refused.value.message
        assert time.monotonic() - started < 5
        blocker.rollback()
    assert first.result()["counts"]
    states = dict(sql(engine, "SELECT id, state FROM queues.strategies"))
    assert states == {a_id: "active", b_id: "draft"}
    assert {p[0] for p in assignments(engine).values()} == {
        scalar(engine, "SELECT id FROM queues.queues WHERE strategy_id = :s", s=a_id)}
    assert len(outbox(engine, "queues_rebuilt")) == 1

    # 3. the nightly or a manual rebuild meets the same lock
    before = _state(engine)
    with psycopg.connect(_dsn(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('queues.rebuild'), 1)")
        with pytest.raises(Conflict):
            supervisor.rebuild_queues(1)
    assert _state(engine) == before
    supervisor.rebuild_queues(1)   # the lock is gone with its connection


@pytest.mark.instances(2)
def test_the_nightly_rebuild_and_the_wake_up_fired_on_two_instances_run_once(
        supervisor, engine, instances, monkeypatch):
    from queues import placement, working

    a_id, _ = strategy(supervisor, "A", [queue("Todas")])
    supervisor.apply_strategy(a_id)
    sql(engine, "UPDATE queues.strategies SET applied_at = now() - interval '25 hours'")
    rebuilt = counting(monkeypatch, placement, "rebuild")
    fire_together(instances["queues"], "nightly_rebuild")
    assert len(rebuilt) == 1
    assert scalar(engine, "SELECT applied_at > now() - interval '1 hour' FROM queues.strategies"
                          " WHERE id = :s", s=a_id)
    fire_together(instances["queues"], "nightly_rebuild")      # applied now: not due
    assert len(rebuilt) == 1

    sql(engine, "UPDATE queues.assignments SET resting_until = now() - interval '1 minute' "
                "WHERE account_id IN (SELECT account_id FROM queues.assignments "
                "ORDER BY account_id LIMIT 10)")
    woken = counting(monkeypatch, working, "wake_rested")
    fire_together(instances["queues"], "wake_rested")
    record("timer_nightly_rebuild_and_wake", {
        "instances_fired": 2, "rebuilds": len(rebuilt), "rested_accounts": 10,
        "woken_per_instance": woken})
    assert sum(woken) == 10
    assert scalar(engine, "SELECT count(*) FROM queues.assignments "
                          "WHERE resting_until IS NOT NULL") == 0


# --- events and the facts projection ----------------------------------------------------------

PORTFOLIO_IDS = [BASE + k for k in range(1, 9)]


@pytest.fixture
def portfolio_rows(world, institutions, engine):
    """Debtors and accounts in the portfolio's tables with the ids of eight of the synthetic
    accounts (institution 1 must exist there), removed after."""
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO portfolio.debtors (id, institution_id, customer_number, name, time_zone)
            SELECT id, 1, 'QT' || id, 'DEUDOR ' || id, :z
            FROM unnest(CAST(:ids AS bigint[])) id"""),
                     {"ids": PORTFOLIO_IDS, "z": ZONE})
        conn.execute(text("""
            INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number, product,
                                            original_amount, balance, stage)
            SELECT id, 1, id, 'QT' || id, 'Tarjeta', 9000, 4321.09, 'current'
            FROM unnest(CAST(:ids AS bigint[])) id"""), {"ids": PORTFOLIO_IDS})
    yield PORTFOLIO_IDS
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.processed_events WHERE event_id IN "
                          "(SELECT event_id FROM queues.outbox)"))
        conn.execute(text("DELETE FROM portfolio.outbox WHERE event_type = 'accounts_changed' "
                          "AND (payload #>> '{accounts,0,account_id}')::bigint = ANY(:ids)"),
                     {"ids": PORTFOLIO_IDS})
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"),
                     {"ids": PORTFOLIO_IDS})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"),
                     {"ids": PORTFOLIO_IDS})


class QuietPortfolioService(PortfolioService):
    """The portfolio service without its outbox relay: the test database is shared with
    other suites, whose unpublished portfolio events it must not take into this vhost."""

    db = Database(PortfolioBase, relay=False)


def announced(engine) -> list[tuple[int, int | None]]:
    """The (account, collector) pairs of every ``assignments_changed`` in the outbox, each
    event loaded through its contract first (a rebuild builds them in PostgreSQL)."""
    schema = contracts.AssignmentsChanged()
    pairs = []
    for payload in outbox(engine, "assignments_changed"):
        pairs += zip(*schema.pairs(schema.load(payload)))
    return pairs


def test_apply_emits_events_and_the_portfolio_follows_the_collectors(
        supervisor, portfolio_rows, engine, monkeypatch):
    from queues import placement
    monkeypatch.setattr(placement, "ANNOUNCE_BATCH", 700)
    strategy_id, (q,) = strategy(supervisor, "Con eventos", [queue("Todas")])
    result = supervisor.apply_strategy(strategy_id)

    (rebuilt,) = outbox(engine, "queues_rebuilt")
    assert rebuilt["counts"] == {str(q): N1} and rebuilt["unplaced"] == 0
    assert rebuilt["strategy_id"] == strategy_id and rebuilt["institution_id"] == 1
    assert len(outbox(engine, "assignments_changed")) == 3      # 700 + 700 + 600
    changed = announced(engine)
    placed = assignments(engine)
    assert sorted(changed) == sorted((a, p[3]) for a, p in placed.items())
    assert result["collector_changes"] == N1

    def portfolio_agents():
        return dict(sql(engine, "SELECT id, assigned_agent_id FROM portfolio.accounts "
                                "WHERE id = ANY(:ids)", ids=portfolio_rows))
    expected = {a: placed[a][3] for a in portfolio_rows}
    assert wait_for(lambda: portfolio_agents() == expected), portfolio_agents()
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM queues.outbox "
                                           "WHERE published_at IS NULL") == 0)

    # a supervisor hands agent 101's accounts back to the queue: announced too
    moved = supervisor.reassign_agent({"from_agent_id": TEAM1[0], "to_agent_id": None})
    assert moved == {"moved": N1 // len(TEAM1)}
    expected = {a: None if agent_id == TEAM1[0] else agent_id for a, agent_id in expected.items()}
    assert wait_for(lambda: portfolio_agents() == expected), portfolio_agents()


@pytest.mark.instances(2)
def test_two_portfolio_instances_follow_a_first_apply_once_per_event(
        supervisor, portfolio_rows, engine, rabbit_config, monkeypatch):
    """The first apply's batches are shared by two portfolio instances, each event taken
    once; an event delivered again (a relay crash between publish and mark) is a no-op."""
    from queues import placement
    monkeypatch.setattr(placement, "ANNOUNCE_BATCH", 300)
    strategy_id, _ = strategy(supervisor, "Dos instancias", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    events = outbox(engine, "assignments_changed")
    assert len(events) == 7                                    # 6 x 300 + 200
    placed = assignments(engine)
    expected = {a: placed[a][3] for a in portfolio_rows}

    def portfolio_agents():
        return dict(sql(engine, "SELECT id, assigned_agent_id FROM portfolio.accounts "
                                "WHERE id = ANY(:ids)", ids=portfolio_rows))

    def handled():
        return scalar(engine, "SELECT count(*) FROM portfolio.processed_events "
                              "WHERE handler = 'assignments_changed' AND event_id = ANY(:e)",
                      e=[uuid.UUID(e["event_id"]) for e in events])
    assert wait_for(lambda: portfolio_agents() == expected), portfolio_agents()
    assert wait_for(lambda: handled() == len(events))

    account = portfolio_rows[0]
    (carrying,) = [e for e in events if account in e["account_ids"]]
    sql(engine, "UPDATE portfolio.accounts SET assigned_agent_id = 999 WHERE id = :a", a=account)
    event_dispatcher(rabbit_config)("queues", "assignments_changed", carrying)
    time.sleep(0.5)
    assert portfolio_agents()[account] == 999 and handled() == len(events)


def test_the_first_apply_places_what_a_diff_places_resting_as_the_facts_say(
        supervisor, engine):
    """An institution's first apply inserts its placement whole (nothing to diff); a later
    apply diffs. Both place every account alike, and a new account rests from the start
    while disputed or with a callback ahead."""
    later = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=5)
    set_facts(engine, [BASE + 1], open_dispute=True)
    set_facts(engine, [BASE + 2], callback_at=later)
    set_facts(engine, [BASE + 3], callback_at=later - timedelta(days=1))    # past: ready
    sorts = [{"field": "balance"}, {"field": "account_id", "direction": "asc"}]
    queues_ = [queue("Mora", L("days_past_due", "gte", 30), sorts),
               queue("Resto", team_id=3, policy="capacity")]
    a_id, a_queues = strategy(supervisor, "A", queues_)
    again_id, again_queues = strategy(supervisor, "A otra vez", queues_)
    b_id, _ = strategy(supervisor, "B", [queue("Todas", team_id=2)])

    def placed():
        """account -> (queue's position, arm, rank, agent)."""
        position = {q: i for ids in (a_queues, again_queues) for i, q in enumerate(ids)}
        return {a: (position[q], *rest) for a, (q, *rest) in assignments(engine).items()}

    first = supervisor.apply_strategy(a_id)
    placed_first = placed()
    rests = dict(sql(engine, "SELECT account_id, resting_until FROM queues.assignments "
                             "WHERE resting_until IS NOT NULL"))
    assert rests == {BASE + 1: working.HELD, BASE + 2: later}
    assert first["collector_changes"] == N1 == len(placed_first)
    assert sorted(announced(engine)) == sorted((a, p[3]) for a, p in placed_first.items())

    supervisor.apply_strategy(b_id)
    again = supervisor.apply_strategy(again_id)               # diffed against B's placement
    assert placed() == placed_first
    assert list(again["counts"].values()) == list(first["counts"].values())

    insert_facts(engine, BASE + N1, 1, 3)                     # three accounts arrive
    set_facts(engine, [BASE + N1 + 1], open_dispute=True)
    supervisor.rebuild_queues(1)
    assert resting(engine, BASE + N1 + 1) == working.HELD
    assert resting(engine, BASE + N1 + 2) is None


def test_accounts_changed_upserts_the_facts_once_per_event(
        queues_service, portfolio_rows, rabbit_config, rpc_proxy, engine):
    """The real producer writes the event (portfolio.update_account, relay off); the test
    publishes that very payload, twice, as the relay would after a crash."""
    editor = rpc_proxy(signed(SUPERVISOR, {"portfolio.read", "portfolio.read_all",
                                           "portfolio.write"}, institutions=None)).portfolio
    dispatch = event_dispatcher(rabbit_config)
    account = portfolio_rows[1]
    sql(engine, "DELETE FROM queues.account_facts WHERE account_id = :a", a=account)

    def produced(stage):
        """portfolio.update_account, then its outbox row taken out of any relay's way."""
        editor.update_account(account, {"stage": stage})
        (event_id, payload), = sql(engine, """
            UPDATE portfolio.outbox SET published_at = now()
            WHERE event_type = 'accounts_changed' AND published_at IS NULL
              AND (payload #>> '{accounts,0,account_id}')::bigint = :a
            RETURNING event_id, payload""", a=account)
        return event_id, payload

    def fact():
        return sql(engine, "SELECT institution_id, debtor_id, stage, balance, product, time_zone "
                           "FROM queues.account_facts WHERE account_id = :a", a=account)

    event_id, payload = produced("litigation")
    dispatch("portfolio", "accounts_changed", payload)
    assert wait_for(lambda: fact() != [])
    assert fact() == [(1, account, "litigation", Decimal("4321.09"), "Tarjeta", ZONE)]

    # the same event delivered again changes nothing (deduped by its id)
    sql(engine, "UPDATE queues.account_facts SET stage = 'current' WHERE account_id = :a",
        a=account)
    dispatch("portfolio", "accounts_changed", payload)
    time.sleep(0.5)
    assert fact()[0][2] == "current"
    assert scalar(engine, "SELECT count(*) FROM queues.processed_events WHERE event_id = :e",
                  e=event_id) == 1

    # a new event does apply
    _, payload = produced("delinquent")
    dispatch("portfolio", "accounts_changed", payload)
    assert wait_for(lambda: fact()[0][2] == "delinquent")


def test_a_large_accounts_changed_batch_is_projected(queues_service, rabbit_config, engine):
    """An import announces its accounts in chunks of thousands: more rows than one
    statement's 65,535 parameters allow."""
    rows = facts(engine)
    accounts = [{**{k: rows[a][k] for k in ("account_id", "institution_id", "debtor_id",
                                             "status_id", "days_past_due", "balance",
                                             "overdue_amount", "product", "state", "time_zone",
                                             "next_due_date")}, "stage": "litigation"}
                for a in sorted(rows)]
    extra = [{**accounts[0], "account_id": BASE + 10_000 + k, "debtor_id": 1} for k in range(4000)]
    payload = contracts.AccountsChanged().dump({
        "event_id": uuid.uuid4(), "occurred_at": datetime.now(timezone.utc),
        "accounts": accounts + extra})
    event_dispatcher(rabbit_config)("portfolio", "accounts_changed", payload)
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM queues.account_facts "
                                           "WHERE institution_id = 1 AND stage = 'litigation'")
                    == N1 + 4000, seconds=20)


# --- resting accounts and the contact log's events ---------------------------------------

def _event(event_type: str, **payload) -> dict:
    return contracts.schema_for("activities", event_type).dump({
        "event_id": uuid.uuid4(), "occurred_at": datetime.now(timezone.utc), **payload})


def _logged(account, agent_id, callback_at=None, started_at=None) -> dict:
    return _event("activity_logged", activity_id=1, account_id=account, institution_id=1,
                  debtor_id=account, agent_id=agent_id, queue_id=None, kind="call",
                  direction="outbound", started_at=started_at or datetime.now(timezone.utc),
                  result_code="NC", contact_made=False, needs_promise=False,
                  invalidates_phone=False, schedules_callback=callback_at is not None,
                  phone=None, callback_at=callback_at, corrects_id=None)


def resting(engine, account):
    return scalar(engine, "SELECT resting_until FROM queues.assignments WHERE account_id = :a",
                  a=account)


def test_a_worked_account_rests_until_tomorrow_and_the_pull_walks_past_it(
        supervisor, agent, engine, rabbit_config):
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    gestor = agent(TEAM1[0])
    first = gestor.next_account()["account_id"]
    event_dispatcher(rabbit_config)("activities", "activity_logged", _logged(first, TEAM1[0]))
    assert wait_for(lambda: scalar(engine, "SELECT count(*) FROM queues.leases") == 0)
    assert wait_for(lambda: resting(engine, first) is not None)
    tomorrow = scalar(engine, "SELECT (date_trunc('day', now() AT TIME ZONE :z) "
                              "+ interval '1 day') AT TIME ZONE :z", z=ZONE)
    assert resting(engine, first) == tomorrow
    contact = sql(engine, "SELECT last_result_code, last_contact_at IS NOT NULL "
                          "FROM queues.account_facts WHERE account_id = :a", a=first)
    assert contact == [("NC", True)]
    assert sql(engine, "SELECT event FROM queues.work_log ORDER BY id") == [("pulled",),
                                                                            ("worked",)]
    # worked today: the next pull hands the following account, not the same one again
    second = gestor.next_account()["account_id"]
    assert second != first
    gestor.release_account(second)                 # released unworked: no rest
    assert resting(engine, second) is None
    # once its time has passed, the timer's wake makes it ready again
    sql(engine, "UPDATE queues.assignments SET resting_until = now() - interval '1 second' "
                "WHERE account_id = :a", a=first)
    with Session(engine) as session, session.begin():
        assert working.wake_rested(session) >= 1
    assert resting(engine, first) is None
    assert gestor.next_account()["account_id"] == first


def test_work_of_an_earlier_day_leaves_the_account_ready(supervisor, agent, engine,
                                                         rabbit_config):
    """A call of two days ago logged now (late, or the demo's past) is a contact the facts
    learn, but the account is not resting: it was not worked today."""
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    account = BASE + 3                             # no contact before
    then = datetime.now(timezone.utc) - timedelta(days=2)
    event_dispatcher(rabbit_config)("activities", "activity_logged",
                                    _logged(account, TEAM1[0], started_at=then))
    assert wait_for(lambda: scalar(engine, "SELECT last_contact_at >= :t FROM queues.account_facts"
                                           " WHERE account_id = :a", a=account, t=then))
    assert resting(engine, account) is None


def test_a_callback_rests_the_account_until_it_is_due(supervisor, agent, engine, rabbit_config):
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    gestor = agent(TEAM1[0])
    first = gestor.next_account()["account_id"]
    due = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=3)
    event_dispatcher(rabbit_config)("activities", "activity_logged",
                                    _logged(first, TEAM1[0], callback_at=due))
    assert wait_for(lambda: resting(engine, first) == due)   # the callback, not tomorrow
    later = due + timedelta(hours=1)
    event_dispatcher(rabbit_config)("activities", "callback_scheduled", _event(
        "callback_scheduled", item_id=1, account_id=first, institution_id=1, kind="callback",
        due_at=later, agent_id=TEAM1[0], team_id=None))
    assert wait_for(lambda: resting(engine, first) == later)
    assert scalar(engine, "SELECT callback_at FROM queues.account_facts WHERE account_id = :a",
                  a=first) == later


def test_a_dispute_holds_the_account_until_it_is_resolved(supervisor, agent, engine,
                                                          rabbit_config):
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    mine = [BASE + r for r in range(1, N1 + 1, len(TEAM1))]
    dispatch = event_dispatcher(rabbit_config)
    dispatch("activities", "dispute_opened", _event(
        "dispute_opened", dispute_id=1, account_id=mine[0], institution_id=1,
        owner_id=SUPERVISOR, due_date=datetime.now(timezone.utc).date()))
    assert wait_for(lambda: resting(engine, mine[0]) == working.HELD)
    gestor = agent(TEAM1[0])
    held = gestor.next_account()["account_id"]
    assert held == mine[1]                           # the disputed one is skipped
    gestor.release_account(held)
    # a rebuild keeps the hold
    supervisor.apply_strategy(strategy_id)
    assert resting(engine, mine[0]) == working.HELD
    dispatch("activities", "dispute_resolved", _event(
        "dispute_resolved", dispute_id=1, account_id=mine[0], institution_id=1,
        outcome="confirmed_debt", corrected_balance=None))
    assert wait_for(lambda: resting(engine, mine[0]) is None)
    assert gestor.next_account()["account_id"] == mine[0]


def test_a_broken_promise_comes_back_first_in_its_queue(supervisor, agent, engine,
                                                        rabbit_config):
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    mine = [BASE + r for r in range(1, N1 + 1, len(TEAM1))]
    late = mine[40]
    promise = dict(promise_id=1, account_id=late, institution_id=1, agent_id=TEAM1[0],
                   amount=Decimal("500.00"), due_date=datetime.now(timezone.utc).date(),
                   paid_amount=Decimal("0"))
    dispatch = event_dispatcher(rabbit_config)
    dispatch("activities", "promise_made", _event("promise_made", activity_id=1,
                                                   instalments=1,
                                                   first_due_date=promise["due_date"],
                                                   **promise))
    assert wait_for(lambda: scalar(engine, "SELECT open_promise FROM queues.account_facts "
                                           "WHERE account_id = :a", a=late))
    dispatch("activities", "promise_broken", _event("promise_broken", state="broken",
                                                     **promise))
    assert wait_for(lambda: scalar(engine, "SELECT broken_promise AND NOT open_promise "
                                           "FROM queues.account_facts WHERE account_id = :a",
                                   a=late))
    assert wait_for(lambda: agent(TEAM1[0]).next_account()["account_id"] == late)


def test_a_promise_made_with_its_entry_is_taken_in_the_entrys_one_transaction(
        supervisor, agent, engine, rabbit_config):
    """The promise the entry names (``promise_id``) opens with the contact, in the
    ``activity_logged`` handler's one transaction; its ``promise_made`` (``with_entry``)
    costs no transaction, and arriving after the entry no longer wakes the worked account."""
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    first = agent(TEAM1[0]).next_account()["account_id"]
    other = BASE + 5
    today = datetime.now(timezone.utc).date()

    def made(account, **extra):
        return _event("promise_made", promise_id=account, account_id=account, institution_id=1,
                      agent_id=TEAM1[0], amount=Decimal("500.00"), due_date=today,
                      paid_amount=Decimal("0"), activity_id=1, instalments=1,
                      first_due_date=today, **extra)

    dispatch = event_dispatcher(rabbit_config)
    dispatch("activities", "activity_logged", {**_logged(first, TEAM1[0]), "promise_id": first})
    assert wait_for(lambda: scalar(engine, "SELECT open_promise AND NOT broken_promise "
                                           "FROM queues.account_facts WHERE account_id = :a",
                                   a=first))
    assert wait_for(lambda: resting(engine, first) is not None)
    rested = resting(engine, first)
    taken = made(first, with_entry=True)
    dispatch("activities", "promise_made", taken)
    dispatch("activities", "promise_made", made(other))   # alone (no entry names it): taken here
    assert wait_for(lambda: scalar(engine, "SELECT open_promise FROM queues.account_facts "
                                           "WHERE account_id = :a", a=other))
    time.sleep(0.3)
    assert scalar(engine, "SELECT count(*) FROM queues.processed_events WHERE event_id = :e",
                  e=uuid.UUID(taken["event_id"])) == 0
    assert resting(engine, first) == rested


def test_one_agents_simultaneous_pulls_lease_one_account(supervisor, rpc_proxy, engine):
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    proxies = [rpc_proxy(signed(TEAM1[0], {"queues.work"}, profile="Gestor")).queues
               for _ in range(5)]
    pool = eventlet.GreenPool(5)
    answers = list(pool.imap(lambda p: p.next_account()["account_id"], proxies))
    assert len(set(answers)) == 1
    assert scalar(engine, "SELECT count(*) FROM queues.leases WHERE agent_id = :a",
                  a=TEAM1[0]) == 1


def test_a_debtor_without_a_zone_is_in_the_institutions(supervisor, agent, engine):
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    mine = [BASE + r for r in range(1, N1 + 1, len(TEAM1))]
    sql(engine, "UPDATE queues.account_facts SET time_zone = NULL WHERE account_id = :a",
        a=mine[0])
    # a window that is open now in Mexico City but closed now in Tokyo
    here = datetime.now(ZoneInfo(ZONE))
    start = (here - timedelta(hours=1)).time() if here.hour >= 1 else clock(0, 0)
    until = (here + timedelta(hours=1)).time() if here.hour <= 21 else clock(23, 59, 59)
    tokyo = datetime.now(ZoneInfo("Asia/Tokyo")).time()
    if start <= tokyo <= until:
        pytest.skip("Tokyo is inside Mexico City's window at this hour")
    sql(engine, "UPDATE queues.institution_rules SET contact_from = :f, contact_until = :u, "
                "time_zone = 'Asia/Tokyo' WHERE institution_id = 1", f=start, u=until)
    gestor = agent(TEAM1[0])
    held = gestor.next_account()["account_id"]
    assert held != mine[0]                       # closed in Tokyo, the institution's zone
    gestor.release_account(held)
    sql(engine, "UPDATE queues.institution_rules SET time_zone = :z WHERE institution_id = 1",
        z=ZONE)
    assert gestor.next_account()["account_id"] == mine[0]


def test_the_pull_skips_a_debt_the_contact_policy_holds_until_the_hold_ends(
        supervisor, agent, engine, rabbit_config):
    """Issue 24: activities' ``contact_hold_changed`` (7-in-7, a conversation, cease, an
    attorney) rests the account until the hold ends; the filter refuses it too, even if
    something woke it (a rebuild); a hold lifted leaves it ready."""
    strategy_id, _ = strategy(supervisor, "Una fila", [queue("Todas")])
    supervisor.apply_strategy(strategy_id)
    mine = [BASE + r for r in range(1, N1 + 1, len(TEAM1))]
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=3)
    dispatch = event_dispatcher(rabbit_config)
    dispatch("activities", "contact_hold_changed", _event(
        "contact_hold_changed", account_id=mine[0], institution_id=1, hold_until=until))
    assert wait_for(lambda: resting(engine, mine[0]) == until)
    gestor = agent(TEAM1[0])
    pulled = gestor.next_account()["account_id"]
    assert pulled == mine[1]                              # the held one is skipped
    gestor.release_account(pulled)
    # woken by hand (say, a rebuild): the pull's own filter still refuses it
    sql(engine, "UPDATE queues.assignments SET resting_until = NULL WHERE account_id = :a",
        a=mine[0])
    assert gestor.next_account()["account_id"] == mine[1]
    gestor.release_account(mine[1])
    assert [i["workable"] for i in gestor.my_worklist({"per_page": 2})["items"]] == [False, True]
    dispatch("activities", "contact_hold_changed", _event(
        "contact_hold_changed", account_id=mine[0], institution_id=1, hold_until=None))
    assert wait_for(lambda: scalar(engine, "SELECT contact_hold_until FROM queues.account_facts "
                                           "WHERE account_id = :a", a=mine[0]) is None)
    assert gestor.next_account()["account_id"] == mine[0]
