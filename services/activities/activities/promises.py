"""Promises to pay: made by logging an activity whose result needs one, kept by the
payments the portfolio service announces, broken by the daily expiry.

A payment is applied once (the ``payments`` table is keyed by the portfolio's movement
id, besides the event inbox) to the account's pending promises, oldest first, and
within each to its instalments in order. A promise whose instalment fell due unpaid
is settled by the expiry: ``broken`` if nothing was paid, ``partly_kept`` otherwise.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import and_, case, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from recaudo_common.errors import InvalidInput

from . import productivity
from .models import Activity, InstitutionSettings, Payment, Promise, PromiseInstalment
from .contracts import InstalmentOut, PromiseOut

ZERO = Decimal("0.00")


def plan_of(terms: dict, today: date) -> list[dict]:
    """The instalments (number, due_date, amount) of validated promise ``terms``; no date
    may be before the institution's ``today``."""
    if terms.get("instalments"):
        plan = [{"number": n, "due_date": i["due_date"], "amount": i["amount"]}
                for n, i in enumerate(terms["instalments"], start=1)]
        past = {str(n - 1): {"due_date": ["La fecha ya pasó"]}
                for n, i in ((p["number"], p) for p in plan) if i["due_date"] < today}
        if past:
            raise InvalidInput("Fecha de promesa pasada", {"promise": {"instalments": past}})
        return plan
    if terms["due_date"] < today:
        raise InvalidInput("Fecha de promesa pasada",
                           {"promise": {"due_date": ["La fecha ya pasó"]}})
    return [{"number": 1, "due_date": terms["due_date"], "amount": terms["amount"]}]


def plan_details(plan: list[dict]) -> dict:
    """The plan as the log entry records it (strings only: hashed, and stable in JSONB)."""
    return {"amount": str(sum(p["amount"] for p in plan)),
            "instalments": [{"number": p["number"], "due_date": p["due_date"].isoformat(),
                             "amount": str(p["amount"])} for p in plan]}


def made_deltas(plan: list[dict]) -> dict:
    """What the promise of ``plan`` adds to its day's rollup row: the row of the entry that
    makes it, so the caller adds both in that row's one upsert."""
    return {"promises_made": 1, "promised_amount": sum(p["amount"] for p in plan)}


def make(session: Session, db, activity: Activity, plan: list[dict], day: date) -> dict:
    """The promise of a logged ``activity``, made as ``make_many`` does and described from
    what its inserts returned (nothing read back)."""
    ((promise, instalments),) = make_many(session, db, [(activity, plan, day)])
    return describe(session, promise, instalments)


def make_many(session: Session, db, made: list[tuple[Activity, list[dict], date]],
              with_entry: bool = True) -> list[tuple[Promise, list[PromiseInstalment]]]:
    """The promises of logged ``(activity, plan, day)``, each with its instalments in order:
    inserted and announced (``promise_made``) - one insert each for many (a history written
    at once). The caller counts them in the rollups with their entries (``made_deltas``)
    and names each in its entry's ``activity_logged`` (so ``promise_made`` is ``with_entry``),
    unless made later than its entry (an approval: ``with_entry`` false)."""
    if not made:
        return []
    promises = session.scalars(insert(Promise).returning(Promise, sort_by_parameter_order=True), [
        {"activity_id": activity.id, "institution_id": activity.institution_id,
         "account_id": activity.account_id, "debtor_id": activity.debtor_id,
         "agent_id": activity.agent_id, "queue_id": activity.queue_id,
         "amount": sum(p["amount"] for p in plan), "due_date": plan[-1]["due_date"],
         "paid_amount": ZERO, "state": "pending", "made_on": day}
        for activity, plan, day in made]).all()
    written: dict[int, list[PromiseInstalment]] = {promise.id: [] for promise in promises}
    for instalment in session.scalars(insert(PromiseInstalment).returning(PromiseInstalment), [
            dict(p, promise_id=promise.id, paid_amount=ZERO)
            for promise, (_, plan, _) in zip(promises, made) for p in plan]):
        written[instalment.promise_id].append(instalment)
    for promise, (activity, plan, _) in zip(promises, made):
        db.emit(session, "promise_made", {
            **_payload(promise), "activity_id": activity.id, "instalments": len(plan),
            "first_due_date": plan[0]["due_date"], "with_entry": with_entry})
    return [(promise, sorted(written[promise.id], key=lambda i: i.number))
            for promise in promises]


def _payload(promise: Promise) -> dict:
    return {"promise_id": promise.id, "account_id": promise.account_id,
            "institution_id": promise.institution_id, "agent_id": promise.agent_id,
            "amount": promise.amount, "due_date": promise.due_date,
            "paid_amount": promise.paid_amount}


def describe(session: Session, promise: Promise,
             instalments: list[PromiseInstalment] | None = None) -> dict:
    """The promise with its instalments (read unless given: those just written)."""
    out = PromiseOut().dump(promise)
    if instalments is None:
        instalments = session.execute(
            select(PromiseInstalment).where(PromiseInstalment.promise_id == promise.id)
            .order_by(PromiseInstalment.number)).scalars().all()
    out["instalments"] = InstalmentOut(many=True).dump(instalments)
    return out


def for_account(session: Session, account_id: int) -> list[dict]:
    rows = session.execute(select(Promise).where(Promise.account_id == account_id)
                           .order_by(Promise.id.desc())).scalars().all()
    return [describe(session, p) for p in rows]


def attribution(session: Session, account_id: int, value_date: date, window_days: int,
                time_zone: str):
    """Who worked the account last within the window before the payment (notes excluded)."""
    local_day = func.date(func.timezone(time_zone, Activity.started_at))
    return session.execute(
        select(Activity.agent_id, Activity.queue_id)
        .where(Activity.account_id == account_id, Activity.kind != "note",
               local_day <= value_date,
               local_day >= value_date - timedelta(days=window_days))
        .order_by(Activity.started_at.desc(), Activity.id.desc()).limit(1)).first()


def apply_payment(session: Session, db, payment: dict) -> bool:
    """Record a ``payment_received`` once, credit it and apply it to pending promises."""
    inserted = session.execute(
        insert(Payment).values(movement_id=payment["movement_id"],
                               institution_id=payment["institution_id"],
                               account_id=payment["account_id"], amount=payment["amount"],
                               value_date=payment["value_date"])
        .on_conflict_do_nothing(index_elements=[Payment.movement_id])
        .returning(Payment.movement_id)).first()
    if inserted is None:
        return False
    settings = session.get(InstitutionSettings, payment["institution_id"])
    window = settings.attribution_days if settings else 30
    time_zone = settings.time_zone if settings else "America/Mexico_City"
    credited = attribution(session, payment["account_id"], payment["value_date"], window,
                           time_zone)
    if credited is not None:
        session.execute(update(Payment).where(Payment.movement_id == payment["movement_id"])
                        .values(agent_id=credited.agent_id, queue_id=credited.queue_id))
        productivity.bump(session, payment["value_date"], credited.agent_id,
                          payment["institution_id"], credited.queue_id,
                          amount_recovered=payment["amount"])
    remaining = Decimal(payment["amount"])
    pending = session.execute(
        select(Promise).where(Promise.account_id == payment["account_id"],
                              Promise.state == "pending",
                              Promise.made_on <= payment["value_date"])
        .order_by(Promise.id).with_for_update()).scalars().all()
    for promise in pending:
        if remaining <= 0:
            break
        instalments = session.execute(
            select(PromiseInstalment).where(PromiseInstalment.promise_id == promise.id)
            .order_by(PromiseInstalment.number)).scalars().all()
        for instalment in instalments:
            owed = instalment.amount - instalment.paid_amount
            take = min(owed, remaining)
            if take > 0:
                instalment.paid_amount += take
                promise.paid_amount += take
                remaining -= take
        if promise.paid_amount >= promise.amount:
            promise.state = "kept"
            promise.settled_on = payment["value_date"]
            promise.settled_at = func.now()
            session.flush()
            productivity.bump(session, payment["value_date"], promise.agent_id,
                              promise.institution_id, promise.queue_id,
                              promises_kept=1, kept_amount=promise.amount)
            db.emit(session, "promise_kept", _payload(promise))
            settlement = session.execute(select(Activity.details["settlement"]).where(
                Activity.id == promise.activity_id)).scalar()
            if settlement:   # the discounted lump sum paid: the rest of the debt is forgiven
                db.emit(session, "settlement_kept", {
                    **_payload(promise), "value_date": payment["value_date"],
                    "discount_pct": settlement["discount_pct"]})
    session.flush()
    return True


def expire(session: Session, db, today: date, institution_ids=None) -> int:
    """Settle the pending promises with an instalment due before ``today`` left unpaid."""
    overdue = exists().where(PromiseInstalment.promise_id == Promise.id,
                             PromiseInstalment.due_date < today,
                             PromiseInstalment.paid_amount < PromiseInstalment.amount)
    conditions = [Promise.state == "pending", overdue]
    if institution_ids is not None:
        conditions.append(Promise.institution_id.in_(list(institution_ids) or [-1]))
    settled = session.execute(
        update(Promise).where(and_(*conditions))
        .values(state=case((Promise.paid_amount > 0, "partly_kept"), else_="broken"),
                settled_on=today, settled_at=func.now())
        .returning(Promise).execution_options(synchronize_session=False)).scalars().all()
    for promise in settled:
        productivity.bump(session, today, promise.agent_id, promise.institution_id,
                          promise.queue_id, promises_broken=1)
        db.emit(session, "promise_broken", {**_payload(promise), "state": promise.state})
    return len(settled)
