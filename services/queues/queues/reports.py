"""Recovery (collected vs assigned, per institution and queue, over time) and champion vs
challenger (recovery per strategy arm).

The queues service knows which queue and arm each account is in; it learns payments
from the portfolio's ``payment_received`` and adds each to ``recovery_daily`` under the
queue and arm the account was in when paid (``record_payment``, one statement). What
was assigned is snapshotted per day into ``assigned_daily`` (``snapshot_assigned``, one
INSERT … SELECT) after every rebuild and once a day. The reports read only these two
rollups.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from recaudo_common.errors import InvalidInput
from recaudo_common.localtime import DEFAULT_ZONE
from recaudo_common.identity import Identity

from .models import AssignedDaily, Queue, RecoveryDaily, Strategy

CENT = Decimal("0.01")
GROUPS = ("day", "institution", "queue", "arm")

_RECORD = text("""
INSERT INTO queues.recovery_daily AS r (day, institution_id, queue_id, arm, payments, collected)
SELECT :day, :institution_id, COALESCE(a.queue_id, 0), COALESCE(a.arm, 'none'), 1, :amount
FROM (SELECT CAST(:account_id AS bigint) AS account_id) x
LEFT JOIN queues.assignments a ON a.account_id = x.account_id
ON CONFLICT (day, institution_id, queue_id, arm) DO UPDATE
SET payments = r.payments + 1, collected = r.collected + EXCLUDED.collected
""")


def record_payment(session: Session, payment: dict) -> None:
    session.execute(_RECORD, {"day": payment["value_date"],
                              "institution_id": payment["institution_id"],
                              "account_id": payment["account_id"], "amount": payment["amount"]})


def snapshot_assigned(session: Session, day: date, institution_id: int | None = None,
                      totals: list | None = None) -> None:
    """What every queue and arm holds now, as ``day``'s row (replacing it). A rebuild
    passes the ``totals`` of the institution's placement it just wrote ((queue_id, arm,
    accounts, balance) rows), not to read the placement back."""
    where = "" if institution_id is None else "WHERE a.institution_id = :institution_id"
    params = {"day": day, "institution_id": institution_id}
    session.execute(text("DELETE FROM queues.assigned_daily WHERE day = :day"
                         + ("" if institution_id is None else
                            " AND institution_id = :institution_id")), params)
    if totals is not None:
        if totals:
            session.execute(insert(AssignedDaily), [
                {"day": day, "institution_id": institution_id, "queue_id": queue_id, "arm": arm,
                 "accounts": accounts, "balance": balance}
                for queue_id, arm, accounts, balance in totals])
        return
    session.execute(text(f"""
        INSERT INTO queues.assigned_daily (day, institution_id, queue_id, arm, accounts, balance)
        SELECT :day, a.institution_id, a.queue_id, a.arm, count(*), COALESCE(sum(f.balance), 0)
        FROM queues.assignments a
        LEFT JOIN queues.account_facts f ON f.account_id = a.account_id
        {where}
        GROUP BY a.institution_id, a.queue_id, a.arm
    """), params)


def snapshot_missing_days(session: Session) -> None:
    """Each institution's snapshot of its own today (the day in its zone, not the
    server's), for the institutions that have none yet."""
    session.execute(text("""
        INSERT INTO queues.assigned_daily (day, institution_id, queue_id, arm, accounts, balance)
        SELECT d.day, a.institution_id, a.queue_id, a.arm, count(*), COALESCE(sum(f.balance), 0)
        FROM queues.assignments a
        LEFT JOIN queues.account_facts f ON f.account_id = a.account_id
        LEFT JOIN queues.institution_rules r ON r.institution_id = a.institution_id
        CROSS JOIN LATERAL (SELECT CAST(timezone(COALESCE(r.time_zone, :zone), now()) AS date)
                            AS day) d
        WHERE NOT EXISTS (SELECT 1 FROM queues.assigned_daily x
                          WHERE x.institution_id = a.institution_id AND x.day = d.day)
        GROUP BY d.day, a.institution_id, a.queue_id, a.arm
    """), {"zone": DEFAULT_ZONE})


def _rate(part, whole) -> str | None:
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")))


def _scope(identity: Identity, column, q: dict) -> list:
    conditions = []
    if not identity.all_institutions:
        conditions.append(column.in_(identity.institutions or (-1,)))
    if q.get("institution_id") is not None:
        identity.require_institution(q["institution_id"])
        conditions.append(column == q["institution_id"])
    return conditions


def check_queue(session: Session, identity: Identity, q: dict) -> None:
    if q.get("queue_id") in (None, 0):
        return
    row = session.execute(select(Strategy.institution_id).join(
        Queue, Queue.strategy_id == Strategy.id).where(Queue.id == q["queue_id"])).first()
    if row is None or not identity.may_access_institution(row[0]) or (
            q.get("institution_id") is not None and row[0] != q["institution_id"]):
        raise InvalidInput("Fila desconocida", {"queue_id": ["No es una fila de la institución"]})


def queue_names(session: Session, identity: Identity, institution_id=None) -> list[dict]:
    """The queues (of every strategy, active or not) a report can be filtered by."""
    conditions = _scope(identity, Strategy.institution_id, {"institution_id": institution_id})
    rows = session.execute(
        select(Queue.id, Queue.name, Strategy.id.label("strategy_id"),
               Strategy.name.label("strategy"), Strategy.institution_id, Strategy.state)
        .join(Strategy, Queue.strategy_id == Strategy.id).where(*conditions)
        .order_by(Strategy.institution_id, Strategy.name, Queue.position)).mappings().all()
    return [dict(r) for r in rows]


def recovery(session: Session, identity: Identity, q: dict) -> dict:
    """Collected in the range vs what was assigned, grouped as asked. Without ``day`` in the
    groups, "assigned" is the last snapshot in the range; with it, each day's own."""
    check_queue(session, identity, q)
    groups = [g for g in GROUPS if g in q["group_by"]]
    R, A = RecoveryDaily, AssignedDaily

    def conditions(model):
        out = [model.day >= q["date_from"], model.day <= q["date_to"],
               *_scope(identity, model.institution_id, q)]
        if q.get("queue_id") is not None:
            out.append(model.queue_id == q["queue_id"])
        return out

    def key_columns(model):
        return [getattr(model, "day" if g == "day" else ("arm" if g == "arm" else f"{g}_id"))
                for g in groups]

    names = ["day" if g == "day" else ("arm" if g == "arm" else f"{g}_id") for g in groups]
    collected = {tuple(r[:len(groups)]): r[len(groups):] for r in session.execute(
        select(*key_columns(R), func.sum(R.payments), func.sum(R.collected))
        .where(*conditions(R)).group_by(*key_columns(R))).all()}
    assigned_conditions = conditions(A)
    if "day" not in groups:
        last = session.execute(select(func.max(A.day)).where(*assigned_conditions)).scalar()
        assigned_conditions.append(A.day == last)
    assigned = {tuple(r[:len(groups)]): r[len(groups):] for r in session.execute(
        select(*key_columns(A), func.sum(A.accounts), func.sum(A.balance))
        .where(*assigned_conditions).group_by(*key_columns(A))).all()}
    labels = _labels(session) if "queue" in groups else {}
    rows = []
    for key in sorted(set(collected) | set(assigned), key=lambda k: tuple(str(v) for v in k)):
        payments, amount = collected.get(key, (0, Decimal(0)))
        accounts, balance = assigned.get(key, (0, Decimal(0)))
        row = dict(zip(names, key))
        if "day" in row:
            row["day"] = row["day"].isoformat()
        if "queue_id" in row:
            row["queue"] = labels.get(row["queue_id"], {}).get("name")
        row.update({"payments": int(payments), "collected": str(Decimal(amount).quantize(CENT)),
                    "accounts_assigned": int(accounts),
                    "balance_assigned": str(Decimal(balance).quantize(CENT)),
                    "recovery_rate": _rate(amount, balance)})
        rows.append(row)
    total_collected = sum((Decimal(r["collected"]) for r in rows), Decimal(0))
    total_payments = sum(r["payments"] for r in rows)
    if "day" in groups:   # assigned is a stock: its total is the last day's, not a sum
        last_day = max((r["day"] for r in rows if r["accounts_assigned"]), default=None)
        stock = [r for r in rows if r["day"] == last_day]
    else:
        stock = rows
    total_balance = sum((Decimal(r["balance_assigned"]) for r in stock), Decimal(0))
    totals = {"payments": total_payments, "collected": str(total_collected.quantize(CENT)),
              "accounts_assigned": sum(r["accounts_assigned"] for r in stock),
              "balance_assigned": str(total_balance.quantize(CENT)),
              "recovery_rate": _rate(total_collected, total_balance)}
    return {"rows": rows, "totals": totals, "group_by": groups,
            "date_from": q["date_from"].isoformat(), "date_to": q["date_to"].isoformat()}


def _labels(session: Session) -> dict[int, dict]:
    return {r.id: {"name": r.name, "strategy": r.strategy} for r in session.execute(
        select(Queue.id, Queue.name, Strategy.name.label("strategy"))
        .join(Strategy, Queue.strategy_id == Strategy.id)).all()}


def champion_challenger(session: Session, identity: Identity, q: dict) -> dict:
    """Per strategy and arm: accounts and balance assigned (last snapshot in the range),
    payments and amount collected in the range, recovery rate and collected per account."""
    R, A = RecoveryDaily, AssignedDaily
    scope_r = [R.day >= q["date_from"], R.day <= q["date_to"],
               *_scope(identity, R.institution_id, q), R.queue_id != 0]
    scope_a = [A.day >= q["date_from"], A.day <= q["date_to"],
               *_scope(identity, A.institution_id, q)]
    last = session.execute(select(func.max(A.day)).where(*scope_a)).scalar()
    strategy = Queue.strategy_id
    collected = {(r[0], r[1]): (r[2], r[3]) for r in session.execute(
        select(strategy, R.arm, func.sum(R.payments), func.sum(R.collected))
        .join(Queue, Queue.id == R.queue_id).where(*scope_r).group_by(strategy, R.arm)).all()}
    assigned = {(r[0], r[1]): (r[2], r[3]) for r in session.execute(
        select(strategy, A.arm, func.sum(A.accounts), func.sum(A.balance))
        .join(Queue, Queue.id == A.queue_id).where(*scope_a, A.day == last)
        .group_by(strategy, A.arm)).all()} if last else {}
    strategies = {s.id: s for s in session.execute(select(Strategy).where(
        Strategy.id.in_({k[0] for k in (*collected, *assigned)} or {-1}))).scalars()}
    rows = []
    for key in sorted(set(collected) | set(assigned)):
        payments, amount = collected.get(key, (0, Decimal(0)))
        accounts, balance = assigned.get(key, (0, Decimal(0)))
        s = strategies[key[0]]
        rows.append({"strategy_id": s.id, "strategy": s.name, "institution_id": s.institution_id,
                     "arm": key[1], "accounts_assigned": int(accounts),
                     "balance_assigned": str(Decimal(balance).quantize(CENT)),
                     "payments": int(payments), "collected": str(Decimal(amount).quantize(CENT)),
                     "recovery_rate": _rate(amount, balance),
                     "collected_per_account": str((Decimal(amount) / accounts).quantize(CENT))
                     if accounts else None})
    return {"rows": rows, "assigned_on": last and last.isoformat(),
            "date_from": q["date_from"].isoformat(), "date_to": q["date_to"].isoformat()}
