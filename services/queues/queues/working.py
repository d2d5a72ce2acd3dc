"""Working the queues: the next-account pull, leases, worklists, supervisors' moves.

``next_account`` takes the calling agent's best account that nobody holds: queue by
queue, their own accounts then nobody's are walked in rank order (an index, never a
sort of the whole queue); the candidate rows are claimed with ``FOR UPDATE SKIP
LOCKED`` (concurrent pulls skip each other instead of waiting); the lease insert checks
the candidate again with a fresh snapshot and is guarded by the primary key of
``leases`` (a double lease is impossible even if the code were wrong). Ending a lease
takes the same row lock, so a pull sees either the lease or everything committed with
its end.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

from sqlalchemy import Connection, and_, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from recaudo_common.contact_policy import DEFAULT_FROM, DEFAULT_UNTIL, DEFAULT_ZONE, sql_may_contact
from recaudo_common.errors import InvalidInput, NotFound
from recaudo_common.identity import Identity

from .models import AccountFacts as F
from .models import Assignment, InstitutionRules, Lease, Queue, Strategy, WorkLog

LEASE_MINUTES = 20
#: candidates claimed per pull (the first that still qualifies is leased; the others are
#: skipped by concurrent pulls until it commits, so the window is kept small)
PULL_WINDOW = 5


def now() -> datetime:
    return datetime.now(timezone.utc)


@lru_cache(maxsize=None)
def _workable():
    """Conditions for an account an agent may be handed now (the one contact policy), for
    the worklist; the pull states the same conditions in its SQL (``queues.pull_take()``)."""
    rules = InstitutionRules

    def of_institution(column):
        return select(column).where(rules.institution_id == F.institution_id).scalar_subquery()

    window_from = func.coalesce(of_institution(rules.contact_from), text("'07:00'::time"))
    window_until = func.coalesce(of_institution(rules.contact_until), text("'22:00'::time"))
    # a debtor with no known zone is in the institution's
    zone = func.coalesce(F.time_zone, of_institution(rules.time_zone))
    return and_(
        ~Queue.frozen,
        _in_force(),
        ~F.open_dispute,
        or_(F.callback_at.is_(None), F.callback_at <= func.now()),
        or_(F.contact_hold_until.is_(None), F.contact_hold_until <= func.now()),
        sql_may_contact(zone, window_from, window_until, F.do_not_contact),
    )


@lru_cache(maxsize=None)
def _in_force():
    """The queue's strategy is the active one, or the active one's challenger."""
    champion = aliased(Strategy)
    return or_(Strategy.state == "active",
               select(champion.id).where(champion.challenger_id == Strategy.id,
                                         champion.state == "active").exists())


def _policy_sql() -> str:
    """The one contact policy over the facts row ``f`` and its institution's rules ``r``
    (left joined: an institution without rules has the default window), as SQL text."""
    facts, rules = F.__table__.alias("f"), InstitutionRules.__table__.alias("r")
    condition = sql_may_contact(
        func.coalesce(facts.c.time_zone, rules.c.time_zone),
        func.coalesce(rules.c.contact_from, text(f"'{DEFAULT_FROM.isoformat()}'::time")),
        func.coalesce(rules.c.contact_until, text(f"'{DEFAULT_UNTIL.isoformat()}'::time")),
        facts.c.do_not_contact)
    return str(condition.compile(dialect=postgresql.dialect(),
                                 compile_kwargs={"literal_binds": True}))


#: the facts that let an account be handed out now (``f``, ``r`` as in ``_policy_sql``)
_READY_FACTS = ("NOT f.open_dispute AND (f.callback_at IS NULL OR f.callback_at <= now()) "
                "AND (f.contact_hold_until IS NULL OR f.contact_hold_until <= now()) "
                f"AND {_policy_sql()}")
_FREE = ("NOT EXISTS (SELECT 1 FROM queues.leases l WHERE l.account_id = a.account_id "
         "AND l.expires_at > now())")
_IN_SCOPE = "(CAST(:all_institutions AS boolean) OR a.institution_id = ANY(:institutions))"
_IN_FORCE = ("(s.state = 'active' OR EXISTS (SELECT 1 FROM queues.strategies c "
             "WHERE c.challenger_id = s.id AND c.state = 'active'))")

#: the pull, in one call of ``queues.next_account()`` (PL/pgSQL, migration e5a9c1f0b377),
#: whose statements state the contact policy as ``_READY_FACTS`` (a test compares them)
_NEXT_ACCOUNT = text("SELECT * FROM queues.next_account(:agent, :all_institutions, "
                     "CAST(:institutions AS integer[]), :minutes, :window)")


def next_account(db: Session | Connection, identity: Identity,
                 lease_minutes: int = LEASE_MINUTES) -> dict | None:
    """Lease the agent's highest-ranked free account; None when there is nothing to do.

    The hot path of every collector's day, so it is one call of ``queues.next_account()``
    in PostgreSQL (each of its statements was a round trip from here): under the agent's
    advisory lock (one pull per agent at a time), a lease on an account that may no
    longer be worked now is let go, and a lease still held is answered again; else queue
    by queue, the agent's own accounts then nobody's are walked in rank order (an index,
    never a sort of the whole queue); candidates are claimed with ``FOR UPDATE SKIP
    LOCKED`` (``queues.pull_candidates``: concurrent pulls skip each other instead of
    waiting); the lease is taken by a new statement (``queues.pull_take``) that checks the
    candidate again with a fresh snapshot (another agent may have leased and finished it
    meanwhile), guarded by the primary key of ``leases``. One statement: ``db`` may be a
    connection in autocommit (the service's), or a session whose transaction it joins.
    """
    identity.require("queues.work")
    row = db.execute(_NEXT_ACCOUNT, {
        "agent": identity.user_id, "all_institutions": identity.all_institutions,
        "institutions": list(identity.institutions or ()), "minutes": lease_minutes,
        "window": PULL_WINDOW}).mappings().first()
    return dict(row) if row is not None else None


_ZONE_SQL = f"coalesce(f.time_zone, r.time_zone, '{DEFAULT_ZONE}')"
_FROM_SQL = f"coalesce(r.contact_from, '{DEFAULT_FROM.isoformat()}'::time)"
_OPENING_TODAY = f"timezone({_ZONE_SQL}, date(timezone({_ZONE_SQL}, now())) + {_FROM_SQL})"
_OUTLOOK = text(f"""
    SELECT count(*) AS waiting,
           count(*) FILTER (WHERE f.do_not_contact) AS do_not_contact,
           count(*) FILTER (WHERE NOT f.do_not_contact AND NOT ({_policy_sql()})) AS outside_hours,
           count(*) FILTER (WHERE f.open_dispute) AS disputed,
           count(*) FILTER (WHERE f.callback_at > now()) AS callbacks_later,
           count(*) FILTER (WHERE a.resting_until IS NOT NULL) AS resting,
           min(CASE WHEN {_OPENING_TODAY} > now() THEN {_OPENING_TODAY}
                    ELSE {_OPENING_TODAY} + interval '1 day' END)
               FILTER (WHERE NOT f.do_not_contact AND NOT ({_policy_sql()})) AS next_window_at,
           min(f.callback_at) FILTER (WHERE f.callback_at > now()) AS next_callback_at
    FROM queues.assignments a
    JOIN queues.account_facts f ON f.account_id = a.account_id
    JOIN queues.queues q ON q.id = a.queue_id
    JOIN queues.strategies s ON s.id = q.strategy_id
    JOIN queues.team_members m ON m.team_id = q.team_id AND m.agent_id = :agent
    LEFT JOIN queues.institution_rules r ON r.institution_id = f.institution_id
    WHERE (a.agent_id = :agent OR a.agent_id IS NULL) AND {_IN_SCOPE}
      AND NOT q.frozen AND {_IN_FORCE} AND {_FREE}""")


def pull_outlook(session: Session, identity: Identity) -> dict:
    """Why the pull has (or has not) something now: the accounts waiting in the agent's
    queues and how many of them are outside the contact hours now (with when the first
    window opens), resting until tomorrow, on hold by a dispute, or waiting for a callback
    (with the next one) - so "nothing now" always comes with a reason and a time."""
    identity.require("queues.work")
    row = session.execute(_OUTLOOK, {
        "agent": identity.user_id, "all_institutions": identity.all_institutions,
        "institutions": list(identity.institutions or ())}).mappings().one()
    return dict(row)


def _institution_scope(identity: Identity):
    if identity.all_institutions:
        return text("true")
    return Assignment.institution_id.in_(identity.institutions or (-1,))


def _lock_assignment(session: Session, account_id: int) -> None:
    """A lease ends under the row lock a pull holds on its candidates: a concurrent pull
    either still sees the lease or sees everything committed with its end."""
    session.execute(select(Assignment.account_id).where(Assignment.account_id == account_id)
                    .with_for_update())


def release(session: Session, identity: Identity, account_id: int, worked: bool = False) -> None:
    """End the caller's lease (logging an activity ends it too, with ``worked``)."""
    identity.require("queues.work")
    _lock_assignment(session, account_id)
    deleted = session.execute(delete(Lease).where(Lease.account_id == account_id,
                                                  Lease.agent_id == identity.user_id)
                              .returning(Lease.account_id)).first()
    if deleted is None:
        raise NotFound("No tiene esa cuenta en gestión")
    queue_id = session.execute(select(Assignment.queue_id).where(
        Assignment.account_id == account_id)).scalar()
    session.add(WorkLog(account_id=account_id, queue_id=queue_id, agent_id=identity.user_id,
                        event="worked" if worked else "released"))
    if worked:
        rest_after_work(session, account_id)


def end_lease_after_activity(session: Session, account_id: int, agent_id: int,
                             worked_at: datetime | None = None) -> None:
    """An activity (started at ``worked_at``) was logged on the account: the agent's lease
    on it is over, and the account rests (see ``rest_after_work``)."""
    _lock_assignment(session, account_id)
    deleted = session.execute(delete(Lease).where(Lease.account_id == account_id,
                                                  Lease.agent_id == agent_id)
                              .returning(Lease.account_id)).first()
    if deleted:
        queue_id = session.execute(select(Assignment.queue_id).where(
            Assignment.account_id == account_id)).scalar()
        session.add(WorkLog(account_id=account_id, queue_id=queue_id, agent_id=agent_id,
                            event="worked"))
    rest_after_work(session, account_id, worked_at)


# --- resting: accounts out of the pull's way until a time ----------------------------------
# An account someone worked today, one with a callback later, or one on hold by a dispute
# cannot be handed out now. It keeps its place (rank) in the queue, but with
# ``resting_until`` set it leaves the pull's partial index: the pull walks only accounts
# that may be ready, instead of stepping over every one worked today at the head of the
# queue. ``wake_rested`` (a timer) clears the times that have passed. The pull still
# checks the facts themselves, so a resting time that is late never hands out too much.

#: "until further notice" (a dispute's hold): a date every client can read, unlike infinity
HELD = datetime(9999, 12, 31, tzinfo=timezone.utc)
#: the account's resting time from its facts alone: a dispute holds it, a callback waits
def resting_from_facts(facts: str) -> str:
    """Until when an account rests by its facts (the table or alias ``facts``): for good
    while a dispute is open, else until a future callback; NULL: ready."""
    return (f"CASE WHEN {facts}.open_dispute THEN '9999-12-31 00:00+00'::timestamptz "
            f"WHEN {facts}.callback_at > now() THEN {facts}.callback_at END")


_RESTING_FROM_FACTS = resting_from_facts("f")


def rest_after_work(session: Session, account_id: int, worked_at: datetime | None = None) -> None:
    """A worked account rests until its callback, or else until the day after the work in
    the institution's time zone (nobody is called twice a day from the queue); work of an
    earlier day (logged late, or the demo's past) leaves it ready."""
    session.execute(text(f"""
        UPDATE queues.assignments a SET resting_until = COALESCE({_RESTING_FROM_FACTS},
            CASE WHEN z.after > now() THEN z.after END)
        FROM queues.account_facts f
        CROSS JOIN LATERAL (SELECT COALESCE((SELECT r.time_zone FROM queues.institution_rules r
                                             WHERE r.institution_id = f.institution_id),
                                            'America/Mexico_City') AS zone) tz
        CROSS JOIN LATERAL (SELECT (date_trunc('day', COALESCE(CAST(:worked AS timestamptz), now())
                                               AT TIME ZONE tz.zone) + interval '1 day')
                                   AT TIME ZONE tz.zone AS after) z
        WHERE a.account_id = :account AND f.account_id = a.account_id"""),
                    {"account": account_id, "worked": worked_at})


def rest_from_facts(session: Session, account_id: int) -> None:
    """The account's facts changed (a callback, a dispute opened or resolved): it rests as
    they say, or is ready now."""
    session.execute(text(f"""
        UPDATE queues.assignments a SET resting_until = {_RESTING_FROM_FACTS}
        FROM queues.account_facts f
        WHERE a.account_id = :account AND f.account_id = a.account_id"""),
                    {"account": account_id})


def rest_new_placements(session: Session, new_accounts: str) -> None:
    """After a rebuild: accounts placed for the first time (the ids ``new_accounts``, a
    SELECT, returns) rest as their facts say."""
    session.execute(text(f"""
        UPDATE queues.assignments a SET resting_until = {_RESTING_FROM_FACTS}
        FROM queues.account_facts f
        WHERE f.account_id = a.account_id AND a.account_id IN ({new_accounts})
          AND a.resting_until IS NULL AND (f.open_dispute OR f.callback_at > now())"""))


def to_the_front(session: Session, account_id: int) -> None:
    """A broken promise: the account is ready now, first of its queue (until the next
    rebuild ranks it by the strategy, which may prefer broken promises)."""
    session.execute(text("""
        UPDATE queues.assignments a SET resting_until = NULL,
               rank = (SELECT min(o.rank) - 1 FROM queues.assignments o
                       WHERE o.queue_id = a.queue_id)
        WHERE a.account_id = :account AND NOT EXISTS (
            SELECT 1 FROM queues.account_facts f
            WHERE f.account_id = a.account_id AND f.open_dispute)"""), {"account": account_id})


def hold(session: Session, account_id: int, until) -> None:
    """The contact policy holds the debt until ``until``: it rests at least that long (off
    the pull's index of ready rows, so a held account costs the pull nothing). A hold
    lifted leaves the rest it already had (worked today, a callback)."""
    if until is None:
        return
    session.execute(text("""
        UPDATE queues.assignments SET resting_until = GREATEST(resting_until, :until)
        WHERE account_id = :account AND :until > now()"""),
                    {"account": account_id, "until": until})


def wake_rested(session: Session) -> int:
    """Accounts whose resting time has passed are ready again; returns how many."""
    return session.execute(text("UPDATE queues.assignments SET resting_until = NULL "
                                "WHERE resting_until <= now()")).rowcount


def worklist(session: Session, identity: Identity, page: int, per_page: int) -> dict:
    """The agent's assigned accounts in work order, with whether each is workable now."""
    identity.require("queues.work")
    base = (select(Assignment.account_id, F.debtor_id, Assignment.queue_id,
                   Queue.name.label("queue"),
                   Assignment.rank, F.days_past_due, F.balance, F.overdue_amount,
                   F.callback_at, _workable().label("workable"))
            .join(F, F.account_id == Assignment.account_id)
            .join(Queue, Queue.id == Assignment.queue_id)
            .join(Strategy, Strategy.id == Queue.strategy_id)
            .where(Assignment.agent_id == identity.user_id, _institution_scope(identity)))
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(base.order_by(Queue.position, Assignment.rank)
                           .offset((page - 1) * per_page).limit(per_page)).mappings().all()
    return {"items": [dict(r) for r in rows], "total": total, "page": page, "per_page": per_page,
            "pages": (total + per_page - 1) // per_page}


def move_accounts(session: Session, account_ids: list[int], queue: Queue) -> int:
    """A supervisor moves accounts into ``queue`` (same institution), at its end."""
    strategy = session.get(Strategy, queue.strategy_id)
    last = session.execute(select(func.coalesce(func.max(Assignment.rank), 0))
                           .where(Assignment.queue_id == queue.id)).scalar_one()
    rows = session.execute(
        update(Assignment)
        .where(Assignment.account_id.in_(account_ids),
               Assignment.institution_id == strategy.institution_id)
        .values(queue_id=queue.id, rank=last + 1)
        .returning(Assignment.account_id)).all()
    if len(rows) != len(set(account_ids)):
        raise InvalidInput("Algunas cuentas no están en filas de esta institución",
                           {"account_ids": ["Cuentas desconocidas o de otra institución"]})
    return len(rows)


def reassign_agent(session: Session, institution_ids, from_agent: int, to_agent: int | None) -> list[int]:
    """Hand every account of one collector to another (or back to the queue: None)."""
    query = update(Assignment).where(Assignment.agent_id == from_agent)
    if institution_ids is not None:
        query = query.where(Assignment.institution_id.in_(institution_ids))
    return [r[0] for r in session.execute(query.values(agent_id=to_agent)
                                          .returning(Assignment.account_id)).all()]


def board(session: Session, strategy: Strategy) -> list[dict]:
    """Per queue: size, worked today, remaining, frozen, agents on it."""
    today = func.date_trunc("day", func.now())
    worked = (select(WorkLog.queue_id, func.count(func.distinct(WorkLog.account_id)).label("n"))
              .where(WorkLog.event == "worked", WorkLog.at >= today)
              .group_by(WorkLog.queue_id).subquery())
    sizes = (select(Assignment.queue_id, func.count().label("n"),
                    func.sum(F.balance).label("balance"))
             .join(F, F.account_id == Assignment.account_id)
             .group_by(Assignment.queue_id).subquery())
    rows = session.execute(
        select(Queue, func.coalesce(sizes.c.n, 0), func.coalesce(sizes.c.balance, 0),
               func.coalesce(worked.c.n, 0))
        .outerjoin(sizes, sizes.c.queue_id == Queue.id)
        .outerjoin(worked, worked.c.queue_id == Queue.id)
        .where(Queue.strategy_id == strategy.id).order_by(Queue.position)).all()
    return [{"queue_id": q.id, "name": q.name, "position": q.position, "frozen": q.frozen,
             "team_id": q.team_id, "policy": q.policy, "accounts": n, "balance": str(b),
             "worked_today": w, "remaining": max(n - w, 0)} for q, n, b, w in rows]
