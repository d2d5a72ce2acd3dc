"""Placing an institution's accounts into a strategy's queues, set-based.

``placement_select`` builds ONE SELECT that decides, for every account of the
institution: its arm (champion or challenger, stable per account), the first queue
whose conditions match, its rank in that queue by the queue's sort, and its collector
by the queue's assignment policy. ``simulate`` puts it into the transaction's scratch
table ``placed_now`` and describes it without writing; ``rebuild`` diffs it against the
assignments and writes only what changed, in one transaction (agents keep seeing the old
assignment until the commit) - or, for an institution without assignments yet (its first
apply after an import), inserts it whole with no diff. The collectors that changed are
announced by events PostgreSQL itself builds from the scratch table. Both count per queue with ``_totals`` over the same
judgement, so a simulation and the rebuild that follows agree by construction.

Both run the placement as ``CREATE TEMP TABLE … AS``, not ``INSERT … SELECT``: only the
former may use parallel workers, which scan, judge and sort the queues' rows side by side
(an ``INSERT`` runs the million-row placement on one core).
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import (BigInteger, DateTime, Integer, String, case, cast, func, literal,
                        literal_column, null, or_, select, text, tuple_, union_all)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement, Executable

from recaudo_common.errors import Conflict, InvalidInput

from . import rules, working
from .models import AccountFacts as F
from .models import Assignment, Queue, Strategy, TeamMember

#: accounts whose collector changed are announced in events of up to this many pairs
#: (about 1 MB of JSON each; the portfolio updates one event's accounts in one statement)
ANNOUNCE_BATCH = 50_000


class CreateTempTableAs(Executable, ClauseElement):
    """``CREATE TEMP TABLE name ON COMMIT DROP AS <select>``, the select's values bound."""

    inherit_cache = False

    def __init__(self, name: str, query):
        self.name, self.query = name, query


@compiles(CreateTempTableAs)
def _create_temp_table_as(element, compiler, **kw):
    return (f"CREATE TEMP TABLE {element.name} ON COMMIT DROP AS "
            f"{compiler.process(element.query, **kw)}")


def _scratch(session: Session, name: str, query) -> None:
    """The transaction's scratch table ``name`` holding ``query``'s rows (made anew)."""
    session.execute(text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
    session.execute(CreateTempTableAs(name, query))


def _arm(strategy: Strategy):
    """Champion or challenger, from a hash of the account id salted by the strategy id."""
    if not strategy.challenger_id or not strategy.challenger_share:
        return literal("champion")
    # bigint before abs(): abs(-2147483648) overflows an integer (an account whose hash
    # is INT_MIN would make every rebuild of its institution fail)
    bucket = func.abs(cast(func.hashtext(cast(F.account_id, String) + f":{strategy.id}"),
                           BigInteger)) % 100
    return case((bucket < strategy.challenger_share, literal("challenger")),
                else_=literal("champion"))


def _first_match(queues: list[Queue]):
    whens = [(rules.compile_condition(q.conditions), literal(q.id)) for q in queues]
    return case(*whens, else_=literal(None, Integer)) if whens else literal(None, Integer)


def _agents(session: Session, team_id: int) -> list[tuple[int, int]]:
    return session.execute(select(TeamMember.agent_id, TeamMember.capacity)
                           .where(TeamMember.team_id == team_id)
                           .order_by(TeamMember.agent_id)).all()


def _agent_expr(session: Session, queue: Queue, rank, balance_rank):
    """The collector of the account at ``rank`` under the queue's policy (NULL if none)."""
    agents = _agents(session, queue.team_id)
    if queue.policy == "manual" or not agents:
        previous = (select(Assignment.agent_id).where(Assignment.account_id == F.account_id)
                    .scalar_subquery())
        return previous if queue.policy == "manual" else literal(None, Integer)
    ids = [a for a, _ in agents]
    n = len(ids)
    if queue.policy == "round_robin":
        slots, position = ids, (rank - 1) % n
    elif queue.policy == "balance_weighted":
        # snake order over balance: 1..n, n..1, 1..n -> every collector gets similar totals
        k = balance_rank - 1
        lap, seat = func.div(k, n), k % n
        position = case((lap % 2 == 0, seat), else_=n - 1 - seat)
        slots = ids
    else:  # capacity: weighted round robin over slots proportional to capacity
        total = sum(max(c, 1) for _, c in agents)
        slots = [a for a, c in agents for _ in range(max(1, round(20 * max(c, 1) / total)))]
        position = (rank - 1) % len(slots)
    return array(slots, type_=Integer)[position + 1]


def _judgement(session: Session, strategy: Strategy):
    """The strategy's queues, and each account's arm and first matching queue (NULL: no
    queue takes it) as expressions over its facts."""
    champion = _queues(session, strategy.id)
    challenger = _queues(session, strategy.challenger_id) if strategy.challenger_id else []
    queues = champion + challenger
    if not queues:
        raise InvalidInput("La estrategia no tiene filas", {"queues": ["Agregue al menos una fila"]})
    arm = _arm(strategy)
    queue_id = case((arm == "challenger", _first_match(challenger)),
                    else_=_first_match(champion)) if challenger else _first_match(champion)
    return queues, arm, queue_id


def _totals(session: Session, strategy: Strategy) -> tuple[list, int]:
    """(queue_id, arm, accounts, balance) of each queue and arm, and how many accounts no
    queue takes: one parallel aggregate over the facts, not a pass over the placement."""
    _, arm, queue_id = _judgement(session, strategy)
    rows = session.execute(
        select(queue_id, arm, func.count(), func.coalesce(func.sum(F.balance), 0))
        .where(F.institution_id == strategy.institution_id).group_by(queue_id, arm)).all()
    placed = [tuple(row) for row in rows if row[0] is not None]
    return placed, sum(row[2] for row in rows if row[0] is None)


def placement_select(session: Session, strategy: Strategy, resting: bool = False):
    """SELECT account_id, institution_id, queue_id, arm, rank, agent_id, balance (and
    ``resting_until`` from the facts when ``resting``: what a new assignment starts with).

    One branch per queue ranks the accounts whose first matching queue it is. A branch
    tests its queue's own condition before the whole first-match CASE: most accounts fail
    it at one comparison. Each branch is a parallel scan and sort of its own when the
    placement runs as ``CREATE TABLE … AS``; read once into a materialized CTE instead,
    one process judged a million accounts and filtered them once per queue (measured a
    quarter slower on two cores)."""
    queues, arm, queue_id = _judgement(session, strategy)
    # NULLS LAST like the queues' own sorts, so a queue sorted by balance shares the sort
    balance_rank = func.row_number().over(order_by=(F.balance.desc().nulls_last(),
                                                    F.account_id))
    parts = []
    for queue in queues:
        rank = func.row_number().over(order_by=rules.compile_sort(queue.sort))
        agent = _agent_expr(session, queue, rank, balance_rank)
        columns = [F.account_id, F.institution_id, literal(queue.id).label("queue_id"),
                   arm.label("arm"), rank.label("rank"), agent.label("agent_id"), F.balance]
        if resting:
            columns.append(literal_column(working.resting_from_facts("queues.account_facts"),
                                          DateTime(timezone=True)).label("resting_until"))
        parts.append(
            select(*columns)
            .where(F.institution_id == strategy.institution_id,
                   rules.compile_condition(queue.conditions), queue_id == queue.id))
    return union_all(*parts)


def _queues(session: Session, strategy_id: int) -> list[Queue]:
    return session.execute(select(Queue).where(Queue.strategy_id == strategy_id)
                           .order_by(Queue.position)).scalars().all()


def _sort_in_memory(session: Session) -> None:
    """The queues' ranking sorts (a million accounts) stay in memory instead of spilling;
    and no JIT: compiling the placement's hundred expressions in every parallel process
    cost more than it saved (0.1-0.25 s of about 3 s)."""
    session.execute(text("SET LOCAL work_mem = '128MB'"))
    session.execute(text("SET LOCAL jit = off"))


def simulate(session: Session, strategy: Strategy, sample_size: int = 5) -> dict:
    """Per queue: accounts, balance, a sample; and what would move versus today."""
    _sort_in_memory(session)
    _scratch(session, "placed_now", placement_select(session, strategy))
    totals, unplaced = _totals(session, strategy)
    per_queue = defaultdict(lambda: [0, 0, 0])   # accounts, balance, of the challenger
    for queue_id, arm, accounts, balance in totals:
        row = per_queue[queue_id]
        row[0], row[1] = row[0] + accounts, row[1] + balance
        row[2] += accounts if arm == "challenger" else 0
    samples = session.execute(text(
        "SELECT queue_id, account_id, rank, agent_id FROM placed_now WHERE rank <= :n "
        "ORDER BY queue_id, rank"), {"n": sample_size}).all()
    moves = session.execute(text(
        "SELECT a.queue_id, p.queue_id, count(*) FROM placed_now p "
        "LEFT JOIN queues.assignments a ON a.account_id = p.account_id "
        "WHERE a.queue_id IS DISTINCT FROM p.queue_id GROUP BY a.queue_id, p.queue_id")).all()
    leaving = session.execute(text(
        "SELECT count(*) FROM queues.assignments a WHERE a.institution_id = :i "
        "AND NOT EXISTS (SELECT 1 FROM placed_now p WHERE p.account_id = a.account_id)"),
        {"i": strategy.institution_id}).scalar_one()
    sample_by_queue = defaultdict(list)
    for queue_id, account_id, rank, agent_id in samples:
        sample_by_queue[queue_id].append({"account_id": account_id, "rank": rank,
                                          "agent_id": agent_id})
    return {
        "queues": [{"queue_id": q, "accounts": n, "balance": str(b), "challenger": c,
                    "sample": sample_by_queue[q]} for q, (n, b, c) in per_queue.items()],
        "unplaced": unplaced,
        "moves": [{"from_queue": f, "to_queue": t, "accounts": n} for f, t, n in moves],
        "leaving_queues": leaving,
    }


def lock_institution(session: Session, institution_id: int) -> None:
    """One rebuild per institution at a time; a second one is told so, not queued."""
    got = session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext('queues.rebuild'), :i)"),
                          {"i": institution_id}).scalar()
    if not got:
        raise Conflict("Otra aplicación de estrategia de esta institución está en curso; "
                       "intente en unos momentos")


def _changes(session: Session, strategy: Strategy):
    """What a rebuild changes in queues.assignments, the placement diffed against them as
    it is computed: rows placed for the first time (``existed`` false), moved or
    re-ranked, and leaving (``leaving``: no queue takes them)."""
    p = placement_select(session, strategy).subquery("p")
    a = (select(Assignment).where(Assignment.institution_id == strategy.institution_id)
         .subquery("a"))
    moved = (tuple_(a.c.queue_id, a.c.arm, a.c.rank, a.c.agent_id)
             .is_distinct_from(tuple_(p.c.queue_id, p.c.arm, p.c.rank, p.c.agent_id)))
    return (select(func.coalesce(p.c.account_id, a.c.account_id).label("account_id"),
                   p.c.institution_id, p.c.queue_id, p.c.arm, p.c.rank, p.c.agent_id,
                   a.c.account_id.is_not(null()).label("existed"),
                   p.c.account_id.is_(null()).label("leaving"),
                   a.c.agent_id.label("old_agent_id"))
            .select_from(p.join(a, a.c.account_id == p.c.account_id, full=True))
            .where(or_(p.c.account_id.is_(None), a.c.account_id.is_(None), moved)))

_UPDATE = """
UPDATE queues.assignments a SET queue_id = c.queue_id, arm = c.arm, rank = c.rank,
       agent_id = c.agent_id, assigned_at = now()
FROM placement_changes c WHERE c.existed AND NOT c.leaving AND a.account_id = c.account_id
"""
_INSERT = """
INSERT INTO queues.assignments AS a (account_id, institution_id, queue_id, arm, rank, agent_id)
SELECT account_id, institution_id, queue_id, arm, rank, agent_id
FROM placement_changes WHERE NOT existed
ON CONFLICT (account_id) DO UPDATE SET institution_id = EXCLUDED.institution_id,
   queue_id = EXCLUDED.queue_id, arm = EXCLUDED.arm, rank = EXCLUDED.rank,
   agent_id = EXCLUDED.agent_id, assigned_at = now()
"""
_DELETE = """
DELETE FROM queues.assignments a USING placement_changes c
WHERE c.leaving AND a.account_id = c.account_id
"""
_COLLECTORS_CHANGED = """
SELECT account_id, agent_id FROM placement_changes
WHERE CASE WHEN leaving THEN old_agent_id IS NOT NULL
           ELSE NOT existed OR agent_id IS DISTINCT FROM old_agent_id END
"""
#: the first placement of an institution, in the order the pull walks a queue: the heap
#: comes out clustered by (queue, rank), and four of the table's six indexes (queue and
#: rank; agent, queue and rank twice; institution) grow at a few right edges instead of
#: at a million random leaves
_INSERT_FIRST = """
INSERT INTO queues.assignments AS a (account_id, institution_id, queue_id, arm, rank, agent_id,
                                     resting_until)
SELECT account_id, institution_id, queue_id, arm, rank, agent_id, resting_until
FROM placed_now ORDER BY queue_id, rank
ON CONFLICT (account_id) DO UPDATE SET institution_id = EXCLUDED.institution_id,
   queue_id = EXCLUDED.queue_id, arm = EXCLUDED.arm, rank = EXCLUDED.rank,
   agent_id = EXCLUDED.agent_id, assigned_at = now(), resting_until = EXCLUDED.resting_until
"""


def announce(db, session: Session, pairs: str, params: dict | None = None) -> int:
    """The ``assignments_changed`` events of the (account_id, agent_id) rows that ``pairs``
    (a SELECT) returns, built inside PostgreSQL in batches of ``ANNOUNCE_BATCH``, in one
    statement: a first apply announces a million collectors without carrying them through
    Python. Returns how many pairs were announced."""
    events = db.emit_from(session, "assignments_changed", f"""
        SELECT jsonb_build_object('account_ids', to_jsonb(array_agg(account_id)),
                                  'agent_ids', to_jsonb(array_agg(agent_id)))
        FROM (SELECT account_id, agent_id,
                     (row_number() OVER () - 1) / {ANNOUNCE_BATCH} AS batch
              FROM ({pairs}) AS pairs) AS numbered
        GROUP BY batch""", params)
    if not events:
        return 0
    return session.execute(text(f"SELECT count(*) FROM ({pairs}) AS pairs"),
                           params or {}).scalar_one()


def _is_first(session: Session, institution_id: int) -> bool:
    return session.execute(select(literal(1)).where(
        Assignment.institution_id == institution_id).limit(1)).first() is None


def _rebuild_first(db, session: Session, strategy: Strategy) -> tuple[int, int]:
    """The institution holds no assignments yet (its first apply, after a full import):
    nothing to diff, so the placement goes straight in, each account resting as its facts
    say, and every placed account is announced. Returns (rows added or removed, pairs
    announced)."""
    _scratch(session, "placed_now", placement_select(session, strategy, resting=True))
    added = session.execute(text(_INSERT_FIRST)).rowcount
    return added, announce(db, session, "SELECT account_id, agent_id FROM placed_now")


def _rebuild_diff(db, session: Session, strategy: Strategy) -> tuple[int, int]:
    """The placement diffed against the assignments; only what changed is written, and
    only collectors that changed are announced. Returns (rows added or removed, pairs
    announced)."""
    _scratch(session, "placement_changes", _changes(session, strategy))
    session.execute(text(_UPDATE))
    added = session.execute(text(_INSERT)).rowcount
    removed = session.execute(text(_DELETE)).rowcount
    working.rest_new_placements(session, "SELECT account_id FROM placement_changes "
                                         "WHERE NOT existed")
    return added + removed, announce(db, session, _COLLECTORS_CHANGED)


def rebuild(db, session: Session, strategy: Strategy) -> dict:
    """Write the placement: only the rows that change are written (new, moved or
    re-ranked, leaving), so a rebuild over unchanged facts writes nothing; an institution
    without assignments gets its placement inserted whole. The (account, collector) pairs
    that changed are announced through ``db`` (the portfolio's projection of collectors
    follows them).

    Returns counts per queue, the totals per queue and arm (queue_id, arm, accounts,
    balance), the accounts no queue takes and how many collectors were announced.
    """
    lock_institution(session, strategy.institution_id)
    _sort_in_memory(session)
    first = _is_first(session, strategy.institution_id)
    added_or_removed, announced = (_rebuild_first if first else _rebuild_diff)(
        db, session, strategy)
    totals, unplaced = _totals(session, strategy)
    if added_or_removed:
        # The pull walks a queue's index in rank order and stops at the first free rows
        # only if the planner knows the queue is large: with the statistics of before the
        # rebuild (an empty or smaller table; autovacuum comes later) it sorted the whole
        # queue on every pull instead, 1 ms became 10 s. Statistics are transactional.
        session.execute(text("ANALYZE queues.assignments"))
    counts = defaultdict(int)
    for queue_id, _, accounts, _ in totals:
        counts[queue_id] += accounts
    return {"counts": dict(counts), "totals": totals, "unplaced": unplaced,
            "collector_changes": announced}
