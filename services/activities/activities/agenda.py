"""The shared agenda: callbacks and visits for an agent or a whole team, delegation, the
calendar views and the private iCalendar feed.

Who may put an item on someone else's agenda: a supervisor for their team's agents
(``identity.team``), anyone for a colleague of one of their teams or for a team they
belong to or supervise (the teams come from auth's ``team_changed`` events).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity

from . import catalogue, ics
from .models import AgendaItem, IcsToken, Team, TeamMember
from .contracts import AgendaOut

FEED_PAST = timedelta(days=7)
FEED_AHEAD = timedelta(days=90)


def create(session: Session, db, item: AgendaItem) -> AgendaItem:
    session.add(item)
    session.flush()
    _announce(session, db, item)
    return item


def _announce(session: Session, db, item: AgendaItem) -> None:
    db.emit(session, "callback_scheduled", {
        "item_id": item.id, "account_id": item.account_id, "institution_id": item.institution_id,
        "kind": item.kind, "due_at": item.due_at, "agent_id": item.agent_id,
        "team_id": item.team_id})


def my_teams(session: Session, user_id: int) -> set[int]:
    """Teams the user belongs to or supervises."""
    member = select(TeamMember.team_id).where(TeamMember.agent_id == user_id)
    supervised = select(Team.team_id).where(Team.supervisor_id == user_id)
    return set(session.execute(member.union(supervised)).scalars())


def colleagues(session: Session, identity: Identity) -> set[int]:
    teams = my_teams(session, identity.user_id)
    members = set(session.execute(select(TeamMember.agent_id).where(
        TeamMember.team_id.in_(teams or {-1}))).scalars())
    supervisors = set(session.execute(select(Team.supervisor_id).where(
        Team.team_id.in_(teams or {-1}))).scalars())
    return {identity.user_id, *identity.team, *members, *supervisors}


def check_target(session: Session, identity: Identity, agent_id, team_id) -> None:
    if team_id is not None:
        if team_id not in my_teams(session, identity.user_id) \
                and not identity.has("activities.manage"):
            raise InvalidInput("Equipo inválido",
                               {"team_id": ["Sólo a un equipo al que pertenece o que supervisa"]})
    elif agent_id is not None and agent_id not in colleagues(session, identity) \
            and not identity.has("activities.manage"):
        raise InvalidInput("Gestor inválido",
                           {"agent_id": ["Sólo a un compañero de sus equipos"]})


def schedule(session: Session, db, identity: Identity, account: dict, data: dict) -> dict:
    agent_id, team_id = data.get("agent_id"), data.get("team_id")
    if agent_id is None and team_id is None:
        agent_id = identity.user_id
    check_target(session, identity, agent_id, team_id)
    now = datetime.now(timezone.utc)
    if not now - timedelta(minutes=10) <= data["due_at"] <= now + timedelta(days=366):
        raise InvalidInput("Fecha inválida", {"due_at": ["Debe ser futura y dentro del próximo año"]})
    item = create(session, db, AgendaItem(
        institution_id=account["institution_id"], account_id=account["id"],
        debtor_id=account["debtor_id"], kind=data["kind"], due_at=data["due_at"],
        agent_id=agent_id, team_id=team_id, note=data["note"], created_by=identity.user_id,
        idempotency_key=data.get("idempotency_key")))
    return AgendaOut().dump(item)


def find_by_key(session: Session, identity: Identity, key: str | None) -> dict | None:
    """The item the caller scheduled earlier with idempotency key ``key``, if any."""
    if not key:
        return None
    item = session.execute(select(AgendaItem).where(
        AgendaItem.created_by == identity.user_id, AgendaItem.idempotency_key == key)).scalar()
    if item is None or not identity.may_access_institution(item.institution_id):
        return None
    return AgendaOut().dump(item)


def _item(session: Session, identity: Identity, item_id: int, lock: bool = False) -> AgendaItem:
    """An item the caller may act on: theirs, their team's, their agents', or one they made."""
    item = session.get(AgendaItem, item_id, with_for_update=lock or None)
    if item is None or not identity.may_access_institution(item.institution_id):
        raise NotFound("Pendiente no encontrado")
    mine = (item.agent_id in (identity.user_id, *identity.team)
            or item.created_by == identity.user_id
            or (item.team_id is not None and item.team_id in my_teams(session, identity.user_id))
            or identity.has("activities.manage"))
    if not mine:
        raise NotFound("Pendiente no encontrado")
    return item


def delegate(session: Session, db, identity: Identity, item_id: int, data: dict) -> dict:
    item = _item(session, identity, item_id, lock=True)
    if item.done_at is not None:
        raise Conflict("El pendiente ya está hecho")
    check_target(session, identity, data.get("agent_id"), data.get("team_id"))
    item.agent_id, item.team_id = data.get("agent_id"), data.get("team_id")
    session.flush()
    _announce(session, db, item)
    return AgendaOut().dump(item)


def mark_done(session: Session, db, identity: Identity, item_id: int) -> dict:
    item = _item(session, identity, item_id, lock=True)
    if item.done_at is not None:
        raise Conflict("El pendiente ya está hecho")
    item.done_at = datetime.now(timezone.utc)
    item.done_by = identity.user_id
    session.flush()
    db.emit(session, "callback_done", {"item_id": item.id, "account_id": item.account_id,
                                       "institution_id": item.institution_id})
    return AgendaOut().dump(item)


def _day_bounds(first: date, last: date, time_zone: str) -> tuple[datetime, datetime]:
    zone = catalogue.zone(time_zone)
    return (datetime.combine(first, time.min, zone),
            datetime.combine(last + timedelta(days=1), time.min, zone))


def agenda_for(session: Session, identity: Identity, q: dict, time_zone: str) -> list[dict]:
    """Items due in [date_from, date_to] (whole days in ``time_zone``): of one agent (the
    caller by default, with their teams' items), or of a team the caller is in or leads."""
    start, end = _day_bounds(q["date_from"], q["date_to"], time_zone)
    if q.get("team_id") is not None:
        team_id = q["team_id"]
        if team_id not in my_teams(session, identity.user_id) \
                and not identity.has("activities.manage"):
            raise NotFound("Equipo no encontrado")
        members = select(TeamMember.agent_id).where(TeamMember.team_id == team_id)
        owner = or_(AgendaItem.team_id == team_id, AgendaItem.agent_id.in_(members))
    else:
        agent_id = q.get("agent_id") or identity.user_id
        if agent_id not in (identity.user_id, *identity.team) \
                and not identity.has("activities.manage"):
            raise PermissionDenied("Sólo su agenda o la de su equipo")
        teams = select(TeamMember.team_id).where(TeamMember.agent_id == agent_id)
        owner = or_(AgendaItem.agent_id == agent_id, AgendaItem.team_id.in_(teams))
    query = select(AgendaItem).where(owner, AgendaItem.due_at >= start, AgendaItem.due_at < end)
    if not identity.all_institutions:
        query = query.where(AgendaItem.institution_id.in_(identity.institutions or (-1,)))
    if not q.get("include_done"):
        query = query.where(AgendaItem.done_at.is_(None))
    rows = session.execute(query.order_by(AgendaItem.due_at, AgendaItem.id).limit(2000)).scalars()
    return AgendaOut(many=True).dump(rows)


# --- the calendar feed -----------------------------------------------------------------

def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(session: Session, agent_id: int) -> str:
    """A fresh private feed token for the agent (the previous one stops working)."""
    token = "cal_" + secrets.token_urlsafe(32)
    statement = insert(IcsToken).values(agent_id=agent_id, token_hash=token_hash(token))
    session.execute(statement.on_conflict_do_update(
        index_elements=[IcsToken.agent_id],
        set_={"token_hash": statement.excluded.token_hash, "created_at": datetime.now(timezone.utc)}))
    return token


def revoke_token(session: Session, agent_id: int) -> None:
    session.execute(delete(IcsToken).where(IcsToken.agent_id == agent_id))


def feed(session: Session, token: str) -> str:
    if not isinstance(token, str) or not token.startswith("cal_") or len(token) > 100:
        raise NotFound("Calendario no encontrado")
    agent_id = session.execute(select(IcsToken.agent_id).where(
        IcsToken.token_hash == token_hash(token))).scalar()
    if agent_id is None:
        raise NotFound("Calendario no encontrado")
    now = datetime.now(timezone.utc)
    teams = select(TeamMember.team_id).where(TeamMember.agent_id == agent_id)
    rows = session.execute(
        select(AgendaItem).where(or_(AgendaItem.agent_id == agent_id,
                                     AgendaItem.team_id.in_(teams)),
                                 AgendaItem.done_at.is_(None),
                                 AgendaItem.due_at >= now - FEED_PAST,
                                 AgendaItem.due_at < now + FEED_AHEAD)
        .order_by(AgendaItem.due_at).limit(5000)).scalars().all()
    items = [{"id": r.id, "kind": r.kind, "due_at": r.due_at, "account_id": r.account_id,
              "note": r.note} for r in rows]
    return ics.calendar("Agenda Recaudo", items, now)
