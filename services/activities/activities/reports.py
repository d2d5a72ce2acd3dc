"""The activities service's reports: productivity, promises and disputes, and the
supervisor's day.

Productivity and promise figures read the ``productivity_daily`` rollup (kept by
increments in the very transactions that log, promise, keep, break and credit), so a
year of a million accounts' activity is a few thousand rows. Pending promises and
disputes are read from their own tables: they are state, not history, and their open
rows are few and indexed. Every query is bounded by the caller's institution scope;
unknown filter values (a team or agent the service has never heard of) are refused
naming the field rather than answering an empty report that looks like a real zero.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import DateTime, and_, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from recaudo_common.errors import InvalidInput
from recaudo_common.identity import Identity

from . import catalogue
from .contracts import DISPUTE_OUTCOMES
from .models import (Activity, Dispute, InstitutionSettings, Productivity,
                     Promise, TeamMember)
from .productivity import COUNTS, KIND_COLUMN, MONEY

CENT = Decimal("0.01")


def _rate(part, whole) -> str | None:
    """A share as a decimal string with four places (None when there is nothing to divide)."""
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")))


def check_known(session: Session, q: dict) -> None:
    """Refuse a team or agent the service has never seen (422 naming the field)."""
    problems = {}
    if q.get("team_id") is not None and session.execute(
            select(TeamMember.team_id).where(TeamMember.team_id == q["team_id"]).limit(1)
    ).first() is None:
        problems["team_id"] = ["Equipo desconocido"]
    if q.get("agent_id") is not None:
        known = session.execute(select(literal(1)).where(or_(
            select(TeamMember.agent_id).where(TeamMember.agent_id == q["agent_id"]).exists(),
            select(Productivity.agent_id).where(Productivity.agent_id == q["agent_id"]).exists(),
        ))).first()
        if known is None:
            problems["agent_id"] = ["Gestor desconocido"]
    if problems:
        raise InvalidInput("Filtro desconocido", problems)


def _scope(identity: Identity, column, q: dict) -> list:
    conditions = []
    if not identity.all_institutions:
        conditions.append(column.in_(identity.institutions or (-1,)))
    if q.get("institution_id") is not None:
        identity.require_institution(q["institution_id"])
        conditions.append(column == q["institution_id"])
    return conditions


def _team_of():
    """An agent's team for grouping (the lowest team id they belong to; 0: none)."""
    return func.coalesce(select(func.min(TeamMember.team_id))
                         .where(TeamMember.agent_id == Productivity.agent_id)
                         .correlate(Productivity).scalar_subquery(), 0)


def _rollup_conditions(identity: Identity, q: dict) -> list:
    P = Productivity
    conditions = [P.day >= q["date_from"], P.day <= q["date_to"],
                  *_scope(identity, P.institution_id, q)]
    if q.get("agent_id") is not None:
        conditions.append(P.agent_id == q["agent_id"])
    if q.get("queue_id") is not None:
        conditions.append(P.queue_id == q["queue_id"])
    if q.get("team_id") is not None:
        conditions.append(P.agent_id.in_(select(TeamMember.agent_id).where(
            TeamMember.team_id == q["team_id"])))
    return conditions


GROUP_COLUMNS = {
    "day": lambda: Productivity.day,
    "agent": lambda: Productivity.agent_id,
    "team": _team_of,
    "institution": lambda: Productivity.institution_id,
    "queue": lambda: Productivity.queue_id,
}


def _key_name(group: str) -> str:
    return "day" if group == "day" else f"{group}_id"


def productivity(session: Session, identity: Identity, q: dict) -> dict:
    """Activities by type, contacts and contact rate, promises made/kept/broken, amounts
    promised, kept and recovered; grouped by any of day, agent, team, institution, queue."""
    check_known(session, q)
    groups = list(q["group_by"])
    keys = [GROUP_COLUMNS[g]().label(_key_name(g)) for g in groups]
    sums = [func.coalesce(func.sum(getattr(Productivity, c)), 0).label(c) for c in COUNTS]
    statement = select(*keys, *sums).where(*_rollup_conditions(identity, q))
    if keys:
        statement = statement.group_by(*keys).order_by(*keys)
    rows = [_productivity_row(dict(r)) for r in session.execute(statement).mappings()]
    if not keys and rows and rows[0]["activities"] == 0 and rows[0]["amount_recovered"] == "0.00":
        rows = []
    totals = _productivity_row({c: sum((Decimal(r[c]) if c in MONEY else r[c] for r in rows),
                                       Decimal(0) if c in MONEY else 0) for c in COUNTS})
    return {"rows": rows, "totals": totals, "group_by": groups,
            "date_from": q["date_from"].isoformat(), "date_to": q["date_to"].isoformat()}


def _productivity_row(row: dict) -> dict:
    if isinstance(row.get("day"), date):
        row["day"] = row["day"].isoformat()
    row["activities"] = sum(int(row[k]) for k in KIND_COLUMN.values())
    reachable = row["activities"] - int(row["notes"])
    row["contact_rate"] = _rate(row["contacts"], reachable)
    row["kept_rate"] = _rate(row["promises_kept"],
                             int(row["promises_kept"]) + int(row["promises_broken"]))
    for column in MONEY:
        row[column] = str(Decimal(row[column]).quantize(CENT))
    for column in COUNTS:
        if column not in MONEY:
            row[column] = int(row[column])
    return row


PROMISE_GROUPS = ("agent", "queue", "team", "institution")


def promises(session: Session, identity: Identity, q: dict) -> dict:
    """Promises made in the range with how they ended: kept and broken (partly kept counts
    as broken) are the rollup's, settled in the range; pending are those made in the range
    still open today."""
    check_known(session, q)
    groups = [g for g in q["group_by"] if g in PROMISE_GROUPS] or ["agent"]
    keys = [GROUP_COLUMNS[g]().label(_key_name(g)) for g in groups]
    P = Productivity
    statement = (select(*keys,
                        func.sum(P.promises_made).label("made"),
                        func.sum(P.promised_amount).label("promised_amount"),
                        func.sum(P.promises_kept).label("kept"),
                        func.sum(P.kept_amount).label("kept_amount"),
                        func.sum(P.promises_broken).label("broken"))
                 .where(*_rollup_conditions(identity, q)).group_by(*keys))
    out: dict[tuple, dict] = {}
    for r in session.execute(statement).mappings():
        key = tuple(r[_key_name(g)] for g in groups)
        out[key] = {**{_key_name(g): r[_key_name(g)] for g in groups},
                    "made": int(r["made"]), "promised_amount": Decimal(r["promised_amount"]),
                    "kept": int(r["kept"]), "kept_amount": Decimal(r["kept_amount"]),
                    "broken": int(r["broken"]), "pending": 0, "pending_amount": Decimal(0)}
    # pending: open promises made in the range (the partial index on pending promises)
    pending_keys = {
        "agent": Promise.agent_id, "queue": func.coalesce(Promise.queue_id, 0),
        "institution": Promise.institution_id,
        "team": func.coalesce(select(func.min(TeamMember.team_id))
                              .where(TeamMember.agent_id == Promise.agent_id)
                              .correlate(Promise).scalar_subquery(), 0)}
    pk = [pending_keys[g].label(_key_name(g)) for g in groups]
    conditions = [Promise.state == "pending", Promise.made_on >= q["date_from"],
                  Promise.made_on <= q["date_to"], *_scope(identity, Promise.institution_id, q)]
    if q.get("agent_id") is not None:
        conditions.append(Promise.agent_id == q["agent_id"])
    if q.get("queue_id") is not None:
        conditions.append(func.coalesce(Promise.queue_id, 0) == q["queue_id"])
    if q.get("team_id") is not None:
        conditions.append(Promise.agent_id.in_(select(TeamMember.agent_id).where(
            TeamMember.team_id == q["team_id"])))
    for r in session.execute(select(*pk, func.count().label("n"),
                                    func.sum(Promise.amount - Promise.paid_amount).label("owed"))
                             .where(*conditions).group_by(*pk)).mappings():
        key = tuple(r[_key_name(g)] for g in groups)
        row = out.setdefault(key, {**{_key_name(g): r[_key_name(g)] for g in groups},
                                   "made": 0, "promised_amount": Decimal(0), "kept": 0,
                                   "kept_amount": Decimal(0), "broken": 0, "pending": 0,
                                   "pending_amount": Decimal(0)})
        row["pending"], row["pending_amount"] = int(r["n"]), Decimal(r["owed"])
    rows = [out[k] for k in sorted(out)]
    rows = [r for r in rows if r["made"] or r["kept"] or r["broken"] or r["pending"]]
    totals = {c: sum((r[c] for r in rows), Decimal(0) if "amount" in c else 0)
              for c in ("made", "promised_amount", "kept", "kept_amount", "broken", "pending",
                        "pending_amount")}
    return {"rows": [_promise_row(r) for r in rows], "totals": _promise_row(totals),
            "group_by": groups, "date_from": q["date_from"].isoformat(),
            "date_to": q["date_to"].isoformat()}


def _promise_row(row: dict) -> dict:
    row = dict(row)
    row["kept_rate"] = _rate(row["kept"], row["kept"] + row["broken"])
    for column in ("promised_amount", "kept_amount", "pending_amount"):
        row[column] = str(Decimal(row[column]).quantize(CENT))
    return row


def disputes(session: Session, identity: Identity, q: dict) -> dict:
    """Per institution (or owner): opened in the range, open now, open and overdue
    against the SLA today (each institution's own today), resolved in the range by
    outcome and how many of those within the SLA."""
    check_known(session, {"agent_id": q.get("agent_id")})
    group = "agent" if "agent" in q["group_by"] else "institution"
    key = (Dispute.owner_id if group == "agent" else Dispute.institution_id).label(
        _key_name(group))
    zone = func.coalesce(select(InstitutionSettings.time_zone).where(
        InstitutionSettings.institution_id == Dispute.institution_id).scalar_subquery(),
        catalogue.SETTINGS_DEFAULTS["time_zone"])
    today = func.date(func.timezone(zone, func.now()))
    opened_day = func.date(func.timezone(zone, Dispute.opened_at))
    resolved_day = func.date(func.timezone(zone, Dispute.resolved_at))
    in_range = lambda day: and_(day >= q["date_from"], day <= q["date_to"])  # noqa: E731
    resolved = and_(Dispute.state == "resolved", in_range(resolved_day))
    count = lambda cond: func.count().filter(cond)  # noqa: E731
    columns = [
        count(in_range(opened_day)).label("opened"),
        count(Dispute.state == "open").label("open"),
        count(and_(Dispute.state == "open", Dispute.due_date < today)).label("overdue"),
        count(resolved).label("resolved"),
        count(and_(resolved, resolved_day <= Dispute.due_date)).label("resolved_in_sla"),
        *(count(and_(resolved, Dispute.outcome == o)).label(o) for o in DISPUTE_OUTCOMES),
    ]
    conditions = _scope(identity, Dispute.institution_id, q)
    if q.get("agent_id") is not None:
        conditions.append(Dispute.owner_id == q["agent_id"])
    # only disputes that touch the range or are still open
    conditions.append(or_(Dispute.state == "open", in_range(opened_day), resolved))
    rows = [dict(r) for r in session.execute(
        select(key, *columns).where(*conditions).group_by(key).order_by(key)).mappings()]
    names = ("opened", "open", "overdue", "resolved", "resolved_in_sla", *DISPUTE_OUTCOMES)
    totals = {n: sum(r[n] for r in rows) for n in names}
    return {"rows": rows, "totals": totals, "group_by": [group],
            "date_from": q["date_from"].isoformat(), "date_to": q["date_to"].isoformat()}


def supervisor_day(session: Session, identity: Identity, q: dict) -> dict:
    """Today's counters for the caller's team (a supervisor) or their institutions (who
    sees everyone), per agent and per hour: what the live dashboard shows."""
    P = Productivity
    day = q["day"]
    conditions = [P.day == day, *_scope(identity, P.institution_id, q)]
    people = None
    if q.get("team_id") is not None:
        check_known(session, {"team_id": q["team_id"]})
        people = select(TeamMember.agent_id).where(TeamMember.team_id == q["team_id"])
    elif identity.team:
        people = (identity.user_id, *identity.team)
    if people is not None:
        conditions.append(P.agent_id.in_(people))
    sums = [func.coalesce(func.sum(getattr(P, c)), 0).label(c) for c in COUNTS]
    agents = [_productivity_row(dict(r)) for r in session.execute(
        select(P.agent_id, *sums).where(*conditions).group_by(P.agent_id)
        .order_by(P.agent_id)).mappings()]
    totals = _productivity_row({c: sum((Decimal(a[c]) if c in MONEY else a[c] for a in agents),
                                       Decimal(0) if c in MONEY else 0) for c in COUNTS})
    # the hour chart: the log itself for one day (indexed by agent and start time)
    zone = q["time_zone"]
    hour = func.extract("hour", func.timezone(zone, Activity.started_at))
    start = func.timezone(zone, cast(day, DateTime))
    end = func.timezone(zone, cast(day + timedelta(days=1), DateTime))
    log_conditions = [Activity.started_at >= start, Activity.started_at < end,
                      Activity.corrects_id.is_(None),
                      *_scope(identity, Activity.institution_id, q)]
    if people is not None:
        log_conditions.append(Activity.agent_id.in_(people))
    per_hour = dict(session.execute(
        select(hour.label("h"), func.count()).where(*log_conditions).group_by("h")).all())
    hours = [{"hour": h, "activities": int(per_hour.get(h, 0))} for h in range(24)]
    return {"day": day.isoformat(), "agents": agents, "totals": totals, "hours": hours}
