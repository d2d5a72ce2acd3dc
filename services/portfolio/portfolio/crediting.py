"""Crediting payments that did not come in a file (a provider's webhook, a triaged
payment) through exactly what a payments file does: the movement once per (account,
reference), ``import_sql.PAYMENTS_APPLY`` (balance, instalments), aging refreshed, and
``payment_received``, ``stage_changed`` and ``accounts_changed`` written to the outbox by
the same statements (so activities keeps promises and the queues learn it the same way)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from . import aging
from . import import_sql as sql


def credit(session, account_id: int, amount, value_date, reference: str, today) -> int | None:
    """Credit one payment in the caller's transaction (one per transaction: the temporary
    tables drop at commit). Returns the new movement's id, or None when the account already
    has a payment of that reference (nothing changes)."""
    session.execute(text(sql.IMP_PAYMENTS))
    movement_id = session.execute(text(
        "WITH ins AS (INSERT INTO portfolio.movements (account_id, kind, amount, value_date, "
        "reference) VALUES (:account, 'payment', :amount, :day, :reference) "
        "ON CONFLICT (account_id, kind, reference) DO NOTHING "
        "RETURNING id, account_id, amount, value_date, reference) "
        "INSERT INTO imp_payments SELECT * FROM ins RETURNING id"),
        {"account": account_id, "amount": amount, "day": value_date,
         "reference": reference[:60]}).scalar_one_or_none()
    if movement_id is None:
        return None
    for statement in sql.PAYMENTS_APPLY:
        session.execute(text(statement))
    aging.refresh(session, today, account_ids=[account_id])
    occurred = {"occurred_at": datetime.now(timezone.utc).isoformat(), "headers": "{}"}
    session.execute(text(sql.PAYMENT_RECEIVED_SQL), occurred)
    session.execute(text(sql.STAGE_CHANGED_SQL), occurred)
    session.execute(text(sql.ACCOUNTS_CHANGED_SQL), occurred)
    session.info["outbox_pending"] = True   # wake the relay at commit
    return movement_id
