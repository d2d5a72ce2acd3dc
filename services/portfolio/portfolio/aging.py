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

from recaudo_common.reporting import bucket_sql

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
    """One aging row per account for ``day`` (re-running the same day replaces it), then
    the day's rollups (``refresh_rollups``)."""
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
    refresh_rollups(session, day)
    return result.rowcount


_DAILY = f"""
INSERT INTO portfolio.aging_daily
    (snapshot_date, institution_id, stage, status_id, bucket, accounts, balance, overdue_amount)
SELECT snapshot_date, institution_id, stage, COALESCE(status_id, 0),
       {bucket_sql("days_past_due")}, count(*), sum(balance), sum(overdue_amount)
FROM portfolio.aging_snapshots
WHERE snapshot_date = :day
GROUP BY 1, 2, 3, 4, 5
"""

#: accounts in both the previous month's last snapshot and ``day``'s, by bucket pair
_ROLLS = f"""
INSERT INTO portfolio.aging_rolls
    (month, institution_id, from_bucket, to_bucket, accounts, balance, from_date, to_date)
SELECT CAST(date_trunc('month', CAST(:day AS date)) AS date), a.institution_id,
       {bucket_sql("p.days_past_due")}, {bucket_sql("a.days_past_due")},
       count(*), sum(a.balance), :previous, :day
FROM portfolio.aging_snapshots a
JOIN portfolio.aging_snapshots p ON p.account_id = a.account_id AND p.snapshot_date = :previous
WHERE a.snapshot_date = :day
GROUP BY 2, 3, 4
"""


def refresh_rollups(session: Session | Connection, day: date) -> None:
    """Rebuild the aging rollup of ``day`` and, when ``day`` is its month's latest snapshot,
    the month's roll rates against the previous month's last snapshot: a few set-based
    statements, whatever the number of accounts."""
    session.execute(text("DELETE FROM portfolio.aging_daily WHERE snapshot_date = :day"),
                    {"day": day})
    session.execute(text(_DAILY), {"day": day})
    month = day.replace(day=1)
    later = session.execute(text(
        "SELECT 1 FROM portfolio.aging_snapshots WHERE snapshot_date > :day "
        "AND snapshot_date < CAST(:month AS date) + interval '1 month' LIMIT 1"),
        {"day": day, "month": month}).first()
    if later:
        return
    previous = session.execute(text(
        "SELECT max(snapshot_date) FROM portfolio.aging_snapshots WHERE snapshot_date < :month"),
        {"month": month}).scalar()
    session.execute(text("DELETE FROM portfolio.aging_rolls WHERE month = :month"),
                    {"month": month})
    if previous is not None:
        session.execute(text(_ROLLS), {"day": day, "previous": previous})


#: the queues' ``do_not_contact`` fact of an account of debtor ``d``: every phone of the
#: debtor is do-not-call (nothing left to call: the pull passes it by); a debtor without
#: phones is not (the accounts still get worked, found another way)
NO_PHONE_TO_CALL = ("COALESCE((SELECT bool_and(p.do_not_call) FROM portfolio.phones p "
                    "WHERE p.debtor_id = d.id), false)")


def facts(session: Session, account_ids: list[int]) -> list[dict]:
    """The queues service's ranking facts of these accounts (``accounts_changed`` payload)."""
    rows = session.execute(text("""
        SELECT a.id AS account_id, a.institution_id, a.debtor_id, a.stage, a.status_id,
               a.days_past_due, a.balance, a.overdue_amount, a.product,
               ad.state, COALESCE(ad.time_zone, d.time_zone, i.time_zone) AS time_zone,
               (SELECT min(due_date) FROM portfolio.instalments n
                 WHERE n.account_id = a.id AND n.paid_amount < n.amount
                   AND n.due_date >= current_date) AS next_due_date,
               """ + NO_PHONE_TO_CALL + """ AS do_not_contact
        FROM portfolio.accounts a
        JOIN portfolio.debtors d ON d.id = a.debtor_id
        JOIN portfolio.institutions i ON i.id = a.institution_id
        LEFT JOIN LATERAL (SELECT state, time_zone FROM portfolio.addresses x
                           WHERE x.debtor_id = d.id ORDER BY x.id LIMIT 1) ad ON true
        WHERE a.id = ANY(:ids)
    """), {"ids": list(account_ids)}).mappings().all()
    return [dict(row) for row in rows]
