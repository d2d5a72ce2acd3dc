"""Days past due, overdue amounts and stages, refreshed set-based; daily aging snapshots.

``refresh`` recomputes, in one statement, each account's days past due (from the
oldest unpaid instalment that has fallen due) and overdue amount, and moves
accounts between current and delinquent (litigation is set by hand and kept). It
returns the accounts whose facts changed, for ``accounts_changed`` and
``stage_changed`` events. ``snapshot`` writes one row per account for a day;
``missing_snapshots`` names the institutions whose today (in their own zone) has none yet,
under a lock that makes one instance of the service take each exactly once.
"""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

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


#: the advisory lock (transaction-scoped) held while snapshots are checked and taken: a
#: second instance waits for the first to commit, then finds the day taken
SNAPSHOT_LOCK = 0x5245434155444F   # "RECAUDO"


def lock_snapshots(session: Session | Connection) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SNAPSHOT_LOCK})


def institution_today(time_zone: str, now: datetime) -> date:
    """"Today" for an institution: the date in its own zone."""
    return now.astimezone(ZoneInfo(time_zone)).date()


def missing_snapshots(session: Session, now: datetime) -> list[tuple[int, date]]:
    """(institution, its today) for every institution with accounts whose today has no
    snapshot yet. Takes the snapshot lock first (held until the transaction ends)."""
    lock_snapshots(session)
    rows = session.execute(text("""
        SELECT i.id, i.time_zone FROM portfolio.institutions i
        WHERE EXISTS (SELECT 1 FROM portfolio.accounts a WHERE a.institution_id = i.id)
        ORDER BY i.id""")).all()
    missing = []
    for institution_id, zone in rows:
        day = institution_today(zone, now)
        taken = session.execute(text(
            "SELECT 1 FROM portfolio.aging_snapshots WHERE institution_id = :i"
            " AND snapshot_date = :d LIMIT 1"), {"i": institution_id, "d": day}).first()
        if not taken:
            missing.append((institution_id, day))
    return missing


def snapshot(session: Session, day: date, institution_id: int | None = None) -> int:
    """One aging row per account (of an institution, or all) for ``day`` (re-running the
    same day replaces it), then the day's rollups (``refresh_rollups``)."""
    result = session.execute(text("""
        INSERT INTO portfolio.aging_snapshots
            (snapshot_date, account_id, institution_id, balance, overdue_amount,
             days_past_due, stage, status_id)
        SELECT :day, id, institution_id, balance, overdue_amount, days_past_due, stage, status_id
        FROM portfolio.accounts
        WHERE CAST(:institution_id AS integer) IS NULL OR institution_id = :institution_id
        ON CONFLICT (snapshot_date, account_id) DO UPDATE
        SET balance = EXCLUDED.balance, overdue_amount = EXCLUDED.overdue_amount,
            days_past_due = EXCLUDED.days_past_due, stage = EXCLUDED.stage,
            status_id = EXCLUDED.status_id
    """), {"day": day, "institution_id": institution_id})
    refresh_rollups(session, day)
    return result.rowcount


_BACKFILL = """
WITH days AS (
    SELECT day FROM unnest(CAST(:days AS date[])) AS day
), overdue AS (
    SELECT d.day, i.account_id, max(d.day - i.due_date) AS dpd,
           sum(i.amount - i.paid_amount) AS overdue
    FROM portfolio.instalments i
    JOIN days d ON i.due_date < d.day
    WHERE i.paid_amount < i.amount AND i.due_date < CAST(:last AS date)
    GROUP BY d.day, i.account_id
)
INSERT INTO portfolio.aging_snapshots
    (snapshot_date, account_id, institution_id, balance, overdue_amount, days_past_due,
     stage, status_id)
SELECT d.day, a.id, a.institution_id, a.balance,
       LEAST(COALESCE(o.overdue, 0), a.balance), COALESCE(o.dpd, 0),
       CASE WHEN a.stage = 'litigation' THEN 'litigation'
            WHEN COALESCE(o.dpd, 0) > 0 THEN 'delinquent' ELSE 'current' END,
       a.status_id
FROM days d
CROSS JOIN portfolio.accounts a
LEFT JOIN overdue o ON o.day = d.day AND o.account_id = a.id
WHERE EXISTS (SELECT 1 FROM portfolio.instalments s WHERE s.account_id = a.id)
ON CONFLICT (snapshot_date, account_id) DO NOTHING
"""


def backfill(session: Session | Connection, days: list[date]) -> int:
    """Snapshots of past ``days`` that have none, computed from the instalment schedules as
    they stand (an instalment paid today counts as paid then: exact when payments came
    before their due dates), one statement for all the days; then each day's rollups, oldest
    first. For a portfolio loaded with its past (the demo)."""
    days = sorted(days)
    rows = session.execute(text(_BACKFILL), {"days": days, "last": days[-1]}).rowcount
    for day in days:
        refresh_rollups(session, day)
    return rows


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
