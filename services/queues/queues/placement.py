"""Placing an institution's accounts into a strategy's queues, set-based.

``placement_select`` builds ONE SELECT that decides, for every account of the
institution: its arm (champion or challenger, stable per account), the first queue
whose conditions match, its rank in that queue by the queue's sort, and its collector
by the queue's assignment policy. ``simulate`` aggregates it without writing;
``rebuild`` writes it in one transaction (agents keep seeing the old assignment
until the commit), so a simulation and the rebuild that follows agree by
construction.
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import (BigInteger, Integer, String, case, cast, column, func, literal, or_,
                        select, table, text, tuple_, union_all)
from sqlalchemy.dialects.postgresql import array, insert
from sqlalchemy.orm import Session

from recaudo_common.errors import Conflict, InvalidInput

from . import rules, working
from .models import AccountFacts as F
from .models import Assignment, Queue, Strategy, TeamMember

#: accounts whose collector changed are announced in batches of this size
ANNOUNCE_BATCH = 5000
_PLACED_COLUMNS = ["account_id", "institution_id", "queue_id", "arm", "rank", "agent_id", "balance"]
#: the transaction's scratch table of a rebuild's placement
_PLACED = table("placed_now", *(column(name) for name in _PLACED_COLUMNS))


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


def placement_select(session: Session, strategy: Strategy):
    """SELECT account_id, institution_id, queue_id, arm, rank, agent_id, balance."""
    champion = _queues(session, strategy.id)
    challenger = _queues(session, strategy.challenger_id) if strategy.challenger_id else []
    arm = _arm(strategy)
    queue_id = case((arm == "challenger", _first_match(challenger)),
                    else_=_first_match(champion)) if challenger else _first_match(champion)
    placed = (select(F.account_id, arm.label("arm"), queue_id.label("queue_id"))
              .where(F.institution_id == strategy.institution_id)
              .subquery("placed"))
    parts = []
    for queue in champion + challenger:
        rank = func.row_number().over(order_by=rules.compile_sort(queue.sort))
        balance_rank = func.row_number().over(order_by=(F.balance.desc(), F.account_id))
        parts.append(
            select(F.account_id, F.institution_id, literal(queue.id).label("queue_id"),
                   placed.c.arm, rank.label("rank"),
                   _agent_expr(session, queue, rank, balance_rank).label("agent_id"),
                   F.balance)
            .join(placed, placed.c.account_id == F.account_id)
            .where(placed.c.queue_id == queue.id))
    if not parts:
        raise InvalidInput("La estrategia no tiene filas", {"queues": ["Agregue al menos una fila"]})
    return union_all(*parts)


def _queues(session: Session, strategy_id: int) -> list[Queue]:
    return session.execute(select(Queue).where(Queue.strategy_id == strategy_id)
                           .order_by(Queue.position)).scalars().all()


def simulate(session: Session, strategy: Strategy, sample_size: int = 5) -> dict:
    """Per queue: accounts, balance, a sample; and what would move versus today."""
    placement = placement_select(session, strategy).subquery("p")
    per_queue = session.execute(
        select(placement.c.queue_id, func.count(), func.sum(placement.c.balance),
               func.count().filter(placement.c.arm == "challenger"))
        .group_by(placement.c.queue_id)).all()
    samples = session.execute(
        select(placement.c.queue_id, placement.c.account_id, placement.c.rank,
               placement.c.agent_id)
        .where(placement.c.rank <= sample_size).order_by(placement.c.queue_id, placement.c.rank)
    ).all()
    moves = session.execute(
        select(Assignment.queue_id.label("from_queue"), placement.c.queue_id.label("to_queue"),
               func.count())
        .select_from(placement.outerjoin(Assignment,
                                         Assignment.account_id == placement.c.account_id))
        .where(or_(Assignment.queue_id.is_(None), Assignment.queue_id != placement.c.queue_id))
        .group_by(Assignment.queue_id, placement.c.queue_id)).all()
    unplaced = session.execute(
        select(func.count()).select_from(F).where(
            F.institution_id == strategy.institution_id,
            F.account_id.not_in(select(placement.c.account_id)))).scalar_one()
    leaving = session.execute(
        select(func.count()).select_from(Assignment).where(
            Assignment.institution_id == strategy.institution_id,
            Assignment.account_id.not_in(select(placement.c.account_id)))).scalar_one()
    sample_by_queue = defaultdict(list)
    for queue_id, account_id, rank, agent_id in samples:
        sample_by_queue[queue_id].append({"account_id": account_id, "rank": rank,
                                          "agent_id": agent_id})
    return {
        "queues": [{"queue_id": q, "accounts": n, "balance": str(b or 0), "challenger": c,
                    "sample": sample_by_queue[q]} for q, n, b, c in per_queue],
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


def rebuild(session: Session, strategy: Strategy) -> dict:
    """Write the placement: upsert every placed account, drop the ones no queue takes.

    Returns counts per queue and the (account, collector) pairs that changed, so the
    portfolio's projection of collectors can follow.
    """
    lock_institution(session, strategy.institution_id)
    # the queues' ranking sorts (a million accounts) stay in memory instead of spilling
    session.execute(text("SET LOCAL work_mem = '128MB'"))
    session.execute(text("CREATE TEMP TABLE IF NOT EXISTS placed_now (account_id bigint PRIMARY KEY,"
                         " institution_id int, queue_id int, arm text, rank int, agent_id int,"
                         " balance numeric) ON COMMIT DROP"))
    session.execute(text("TRUNCATE placed_now"))
    session.execute(_PLACED.insert().from_select(_PLACED_COLUMNS,
                                                 placement_select(session, strategy)))
    changed = session.execute(text("""
        SELECT p.account_id, p.agent_id FROM placed_now p
        LEFT JOIN queues.assignments a ON a.account_id = p.account_id
        WHERE a.account_id IS NULL OR a.agent_id IS DISTINCT FROM p.agent_id
        UNION ALL
        SELECT a.account_id, NULL FROM queues.assignments a
        WHERE a.institution_id = :i AND a.agent_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM placed_now p WHERE p.account_id = a.account_id)
    """), {"i": strategy.institution_id}).all()
    written = _PLACED_COLUMNS[:-1]  # all but balance
    upsert = insert(Assignment).from_select(written, select(*(_PLACED.c[n] for n in written)))
    kept = ("institution_id", "queue_id", "arm", "rank", "agent_id")
    session.execute(upsert.on_conflict_do_update(
        index_elements=[Assignment.account_id],
        set_={**{c: upsert.excluded[c] for c in kept}, "assigned_at": func.now()},
        # an unchanged placement is not rewritten (nor are its index entries)
        where=tuple_(*(Assignment.__table__.c[c] for c in kept)).is_distinct_from(
            tuple_(*(upsert.excluded[c] for c in kept)))))
    session.execute(text("""
        DELETE FROM queues.assignments a WHERE a.institution_id = :i
          AND NOT EXISTS (SELECT 1 FROM placed_now p WHERE p.account_id = a.account_id)
    """), {"i": strategy.institution_id})
    working.rest_new_placements(session, strategy.institution_id)
    # The pull walks a queue's index in rank order and stops at the first free rows only if
    # the planner knows the queue is large: with the statistics of before the rebuild (an
    # empty or smaller table; autovacuum comes later) it sorted the whole queue on every
    # pull instead, 1 ms became 10 s. Statistics are transactional: they commit with it.
    session.execute(text("ANALYZE queues.assignments"))
    counts = session.execute(text("SELECT queue_id, count(*) FROM placed_now GROUP BY queue_id")).all()
    return {"counts": {q: n for q, n in counts}, "changed": [(a, g) for a, g in changed]}

