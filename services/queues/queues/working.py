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

from datetime import datetime, timedelta, timezone
from functools import lru_cache

from sqlalchemy import (DateTime, and_, delete, func, literal, or_, select, text,
                        update)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from recaudo_common.contact_policy import sql_may_contact
from recaudo_common.errors import InvalidInput, NotFound
from recaudo_common.identity import Identity

from .models import AccountFacts as F
from .models import Assignment, InstitutionRules, Lease, Queue, Strategy, TeamMember, WorkLog

LEASE_MINUTES = 20
#: candidates examined per pull before giving up (they are skipped, not waited for)
PULL_WINDOW = 20


def now() -> datetime:
    return datetime.now(timezone.utc)


@lru_cache(maxsize=None)
def _workable():
    """Conditions for an account an agent may be handed now (the one contact policy).
    Built once: the expression does not depend on the caller (a pull uses it 3 times)."""
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
        sql_may_contact(zone, window_from, window_until, F.do_not_contact),
    )


@lru_cache(maxsize=None)
def _in_force():
    """The queue's strategy is the active one, or the active one's challenger."""
    champion = aliased(Strategy)
    return or_(Strategy.state == "active",
               select(champion.id).where(champion.challenger_id == Strategy.id,
                                         champion.state == "active").exists())


def _my_queues(identity: Identity):
    return select(Queue.id).join(TeamMember, TeamMember.team_id == Queue.team_id).where(
        TeamMember.agent_id == identity.user_id)


def next_account(session: Session, identity: Identity, lease_minutes: int = LEASE_MINUTES) -> dict | None:
    """Lease the agent's highest-ranked free account; None when there is nothing to do."""
    identity.require("queues.work")
    # one pull per agent at a time: two at once (a double click) would lease two accounts
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('queues.pull'), :agent)"),
                    {"agent": identity.user_id})
    current = session.execute(select(Lease).where(Lease.agent_id == identity.user_id,
                                                  Lease.expires_at > func.now())).scalar_one_or_none()
    if current is not None:  # finish (or release) the one you hold first
        return _describe(session, current.account_id, current)

    def eligible(query):
        """The agent's accounts that may be worked now (the same test for choosing and,
        again, for leasing)."""
        return (query.join(F, F.account_id == Assignment.account_id)
                .join(Queue, Queue.id == Assignment.queue_id)
                .join(Strategy, Strategy.id == Queue.strategy_id)
                .where(Assignment.queue_id.in_(_my_queues(identity)),
                       or_(Assignment.agent_id == identity.user_id,
                           Assignment.agent_id.is_(None)),
                       _institution_scope(identity),
                       _workable()))

    free = ~select(Lease.account_id).where(Lease.account_id == Assignment.account_id,
                                           Lease.expires_at > func.now()).exists()
    queue_ids = session.execute(
        select(Queue.id).join(Strategy, Strategy.id == Queue.strategy_id)
        .where(Queue.id.in_(_my_queues(identity)), ~Queue.frozen, _in_force())
        .order_by(Queue.position, Queue.id)).scalars().all()
    expires = now() + timedelta(minutes=lease_minutes)
    for queue_id in queue_ids:
        # in queue order: the caller's own accounts, then nobody's, each walked in rank
        # order on (agent_id, queue_id, rank) and stopped at the first free ones (never a
        # sort of the whole queue); candidates another pull holds are skipped, not awaited
        for owner in (Assignment.agent_id == identity.user_id, Assignment.agent_id.is_(None)):
            candidates = session.execute(
                eligible(select(Assignment.account_id))
                .where(Assignment.queue_id == queue_id, owner, Assignment.resting_until.is_(None),
                       free)
                .order_by(Assignment.rank)
                .limit(PULL_WINDOW)
                .with_for_update(of=Assignment, skip_locked=True)).scalars().all()
            for account_id in candidates:
                # The candidates come from the snapshot the SELECT started with: meanwhile
                # another agent may have leased one and finished it (lease gone, callback or
                # do-not-contact set). The lease is taken only if, seen by this new
                # statement, it still qualifies.
                still = eligible(select(Assignment.account_id, literal(identity.user_id),
                                        literal(expires, DateTime(timezone=True)))
                                 ).where(Assignment.account_id == account_id)
                taken = session.execute(
                    insert(Lease).from_select(["account_id", "agent_id", "expires_at"], still)
                    .on_conflict_do_update(index_elements=[Lease.account_id],
                                           set_={"agent_id": identity.user_id,
                                                 "leased_at": func.now(), "expires_at": expires},
                                           where=Lease.expires_at <= func.now())
                    .returning(Lease.account_id)).first()
                if taken:
                    session.add(WorkLog(account_id=account_id, queue_id=queue_id,
                                        agent_id=identity.user_id, event="pulled"))
                    session.flush()
                    return _describe(session, account_id, session.get(Lease, account_id))
    return None


def _institution_scope(identity: Identity):
    if identity.all_institutions:
        return text("true")
    return Assignment.institution_id.in_(identity.institutions or (-1,))


def _describe(session: Session, account_id: int, lease: Lease) -> dict:
    row = session.execute(
        select(Assignment, F.debtor_id, Queue.name)
        .join(F, F.account_id == Assignment.account_id)
        .join(Queue, Queue.id == Assignment.queue_id)
        .where(Assignment.account_id == account_id)).first()
    assignment, debtor_id, queue_name = row
    return {"account_id": account_id, "debtor_id": debtor_id, "queue_id": assignment.queue_id,
            "queue": queue_name, "rank": assignment.rank, "lease_expires_at": lease.expires_at}


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


def end_lease_after_activity(session: Session, account_id: int, agent_id: int) -> None:
    """An activity was logged on the account: the agent's lease on it is over, and the
    account rests (see ``rest_after_work``)."""
    _lock_assignment(session, account_id)
    deleted = session.execute(delete(Lease).where(Lease.account_id == account_id,
                                                  Lease.agent_id == agent_id)
                              .returning(Lease.account_id)).first()
    if deleted:
        queue_id = session.execute(select(Assignment.queue_id).where(
            Assignment.account_id == account_id)).scalar()
        session.add(WorkLog(account_id=account_id, queue_id=queue_id, agent_id=agent_id,
                            event="worked"))
    rest_after_work(session, account_id)


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
_RESTING_FROM_FACTS = ("CASE WHEN f.open_dispute THEN '9999-12-31 00:00+00'::timestamptz "
                       "WHEN f.callback_at > now() THEN f.callback_at END")


def rest_after_work(session: Session, account_id: int) -> None:
    """A worked account rests until its callback, or else until tomorrow in the
    institution's time zone (nobody is called twice a day from the queue)."""
    session.execute(text(f"""
        UPDATE queues.assignments a SET resting_until = COALESCE({_RESTING_FROM_FACTS},
            (date_trunc('day', now() AT TIME ZONE z.zone) + interval '1 day') AT TIME ZONE z.zone)
        FROM queues.account_facts f
        CROSS JOIN LATERAL (SELECT COALESCE((SELECT r.time_zone FROM queues.institution_rules r
                                             WHERE r.institution_id = f.institution_id),
                                            'America/Mexico_City') AS zone) z
        WHERE a.account_id = :account AND f.account_id = a.account_id"""),
                    {"account": account_id})


def rest_from_facts(session: Session, account_id: int) -> None:
    """The account's facts changed (a callback, a dispute opened or resolved): it rests as
    they say, or is ready now."""
    session.execute(text(f"""
        UPDATE queues.assignments a SET resting_until = {_RESTING_FROM_FACTS}
        FROM queues.account_facts f
        WHERE a.account_id = :account AND f.account_id = a.account_id"""),
                    {"account": account_id})


def rest_new_placements(session: Session, institution_id: int) -> None:
    """After a rebuild: accounts placed for the first time rest as their facts say."""
    session.execute(text(f"""
        UPDATE queues.assignments a SET resting_until = {_RESTING_FROM_FACTS}
        FROM queues.account_facts f
        WHERE f.account_id = a.account_id AND a.institution_id = :i
          AND a.resting_until IS NULL AND (f.open_dispute OR f.callback_at > now())"""),
                    {"i": institution_id})


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


def wake_rested(session: Session) -> int:
    """Accounts whose resting time has passed are ready again; returns how many."""
    return session.execute(text("UPDATE queues.assignments SET resting_until = NULL "
                                "WHERE resting_until <= now()")).rowcount


def worklist(session: Session, identity: Identity, page: int, per_page: int) -> dict:
    """The agent's assigned accounts in work order, with whether each is workable now."""
    identity.require("queues.work")
    base = (select(Assignment.account_id, F.debtor_id, Queue.name.label("queue"),
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
