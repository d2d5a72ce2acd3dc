"""Days past due, overdue amounts and stages, refreshed set-based; daily aging snapshots.

``refresh`` recomputes, in one statement, each account's days past due (from the
oldest unpaid instalment that has fallen due) and overdue amount, and moves
accounts between current and delinquent (litigation is set by hand and kept). It
returns the accounts whose facts changed, for ``accounts_changed`` and
``stage_changed`` events. ``snapshot`` writes one row per account for a day.
"""
from __future__ import annotations

from datetime import date

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

_REFRESH = """
WITH due AS (
    SELECT a.id,
           COALESCE(max(:today - i.due_date) FILTER (WHERE i.paid_amount < i.amount
                                                     AND i.due_date < :today), 0) AS dpd,
           COALESCE(sum(i.amount - i.paid_amount) FILTER (WHERE i.paid_amount < i.amount
                                                          AND i.due_date < :today), 0) AS overdue,
           bool_or(true) FILTER (WHERE i.id IS NOT NULL) AS has_schedule
    FROM portfolio.accounts a
    LEFT JOIN portfolio.instalments i ON i.account_id = a.id
    WHERE {where}
    GROUP BY a.id
), changed AS (
    UPDATE portfolio.accounts a
    SET days_past_due = due.dpd,
        overdue_amount = LEAST(due.overdue, a.balance),
        stage = CASE WHEN a.stage = 'litigation' THEN 'litigation'
                     WHEN due.dpd > 0 THEN 'delinquent' ELSE 'current' END,
        updated_at = now()
    FROM due, portfolio.accounts old
    WHERE a.id = due.id AND old.id = a.id AND due.has_schedule
      AND (a.days_past_due, a.overdue_amount, a.stage)
          IS DISTINCT FROM (due.dpd, LEAST(due.overdue, a.balance),
                            CASE WHEN a.stage = 'litigation' THEN 'litigation'
                                 WHEN due.dpd > 0 THEN 'delinquent' ELSE 'current' END)
    RETURNING a.id, a.institution_id, old.stage AS old_stage, a.stage AS new_stage
)
SELECT id, institution_id, old_stage, new_stage FROM changed
"""


def refresh(session: Session | Connection, today: date, account_ids: list[int] | None = None,
            institution_id: int | None = None) -> list:
    """Recompute aging for some accounts (or an institution, or all); return what changed."""
    params: dict = {"today": today}
    if account_ids is not None:
        where, params["ids"] = "a.id = ANY(:ids)", list(account_ids)
    elif institution_id is not None:
        where, params["institution_id"] = "a.institution_id = :institution_id", institution_id
    else:
        where = "true"
    return session.execute(text(_REFRESH.format(where=where)), params).all()


def snapshot(session: Session, day: date) -> int:
    """One aging row per account for ``day`` (re-running the same day replaces it)."""
    result = session.execute(text("""
        INSERT INTO portfolio.aging_snapshots
            (snapshot_date, account_id, institution_id, balance, overdue_amount,
             days_past_due, stage, status_id)
        SELECT :day, id, institution_id, balance, overdue_amount, days_past_due, stage, status_id
        FROM portfolio.accounts
        ON CONFLICT (snapshot_date, account_id) DO UPDATE
        SET balance = EXCLUDED.balance, overdue_amount = EXCLUDED.overdue_amount,
            days_past_due = EXCLUDED.days_past_due, stage = EXCLUDED.stage,
            status_id = EXCLUDED.status_id
    """), {"day": day})
    return result.rowcount


def facts(session: Session, account_ids: list[int]) -> list[dict]:
    """The queues service's ranking facts of these accounts (``accounts_changed`` payload)."""
    rows = session.execute(text("""
        SELECT a.id AS account_id, a.institution_id, a.debtor_id, a.stage, a.status_id,
               a.days_past_due, a.balance, a.overdue_amount, a.product,
               ad.state, COALESCE(ad.time_zone, d.time_zone, i.time_zone) AS time_zone,
               (SELECT min(due_date) FROM portfolio.instalments n
                 WHERE n.account_id = a.id AND n.paid_amount < n.amount
                   AND n.due_date >= current_date) AS next_due_date
        FROM portfolio.accounts a
        JOIN portfolio.debtors d ON d.id = a.debtor_id
        JOIN portfolio.institutions i ON i.id = a.institution_id
        LEFT JOIN LATERAL (SELECT state, time_zone FROM portfolio.addresses x
                           WHERE x.debtor_id = d.id ORDER BY x.id LIMIT 1) ad ON true
        WHERE a.id = ANY(:ids)
    """), {"ids": list(account_ids)}).mappings().all()
    return [dict(row) for row in rows]
