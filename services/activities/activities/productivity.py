"""Productivity rollups: one row per (day, agent, institution, queue), kept by increments
in the very transactions that log activities, make, keep or break promises and credit
payments, so a report reads a few rows instead of scanning the log, and is never
behind it. Days are the institution's calendar days; queue 0 means "none known".
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from recaudo_common.identity import Identity

from .models import Productivity, TeamMember

KIND_COLUMN = {"call": "calls", "visit": "visits", "email": "emails", "fax": "faxes",
               "sms": "sms", "letter": "letters", "note": "notes"}
COUNTS = ("calls", "visits", "emails", "faxes", "sms", "letters", "notes", "contacts",
          "promises_made", "promised_amount", "promises_kept", "kept_amount", "promises_broken",
          "amount_recovered")
MONEY = ("promised_amount", "kept_amount", "amount_recovered")


def bump(session: Session, day: date, agent_id: int, institution_id: int, queue_id: int | None,
         **deltas) -> None:
    """Add ``deltas`` (column -> amount, may be negative) to one rollup row."""
    deltas = {k: v for k, v in deltas.items() if v}
    if not deltas:
        return
    key = {"day": day, "agent_id": agent_id, "institution_id": institution_id,
           "queue_id": queue_id or 0}
    statement = insert(Productivity).values(**key, **deltas)
    session.execute(statement.on_conflict_do_update(
        index_elements=list(key),
        set_={k: getattr(Productivity, k) + statement.excluded[k] for k in deltas}))


def entry_deltas(kind: str, contact_made: bool, sign: int = 1) -> dict:
    """What one log entry adds to its day's row (``sign`` -1 takes a corrected one back)."""
    return {KIND_COLUMN[kind]: sign, "contacts": sign if contact_made else 0}


def query(session: Session, identity: Identity, q: dict) -> dict:
    """Sums over the range, grouped as asked, within what the caller may see: everyone of
    their institutions with ``reports.view``; a supervisor their team; others themselves."""
    P = Productivity
    conditions = [P.day >= q["date_from"], P.day <= q["date_to"]]
    if not identity.all_institutions:
        conditions.append(P.institution_id.in_(identity.institutions or (-1,)))
    if not identity.has("reports.view"):
        conditions.append(P.agent_id.in_((identity.user_id, *identity.team)))
    if q.get("institution_id") is not None:
        conditions.append(P.institution_id == q["institution_id"])
    if q.get("agent_id") is not None:
        conditions.append(P.agent_id == q["agent_id"])
    if q.get("queue_id") is not None:
        conditions.append(P.queue_id == q["queue_id"])
    if q.get("team_id") is not None:
        conditions.append(P.agent_id.in_(select(TeamMember.agent_id).where(
            TeamMember.team_id == q["team_id"])))
    groups = [c for c in ("day", "agent", "institution", "queue") if c in q["group_by"]]
    group_columns = [getattr(P, "day" if g == "day" else f"{g}_id") for g in groups]
    sums = [func.coalesce(func.sum(getattr(P, c)), 0).label(c) for c in COUNTS]
    rows = session.execute(select(*group_columns, *sums).where(*conditions)
                           .group_by(*group_columns).order_by(*group_columns)).mappings().all()
    out = [_row(r) for r in rows]
    totals = {c: sum((r[c] for r in out), Decimal("0.00") if c in MONEY else 0) for c in COUNTS}
    return {"rows": [_money_strings(r) for r in out], "totals": _money_strings(totals), "group_by": groups,
            "date_from": q["date_from"].isoformat(), "date_to": q["date_to"].isoformat()}


def _row(row) -> dict:
    out = dict(row)
    if "day" in out:
        out["day"] = out["day"].isoformat()
    for column in MONEY:
        out[column] = Decimal(out[column]).quantize(Decimal("0.01"))
    out["activities"] = sum(out[KIND_COLUMN[k]] for k in KIND_COLUMN)
    return out


def _money_strings(row: dict) -> dict:
    out = dict(row)
    out["activities"] = sum(out[KIND_COLUMN[k]] for k in KIND_COLUMN)
    for column in MONEY:
        out[column] = str(Decimal(out[column]).quantize(Decimal("0.01")))
    return out
