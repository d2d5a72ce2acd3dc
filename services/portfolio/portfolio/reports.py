"""The portfolio's reports: aging (balances and counts by days-past-due bucket, by stage
and status) and roll rates (how accounts moved between buckets month to month).

Both read the rollups ``aging.refresh_rollups`` builds with each daily snapshot
(``aging_daily``, ``aging_rolls``): a report over a million accounts reads a few
dozen rows. A status that is not one of the institution's, or a filter value the
catalogue does not know, is refused naming the field.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recaudo_common.errors import InvalidInput
from recaudo_common.identity import Identity
from recaudo_common.reporting import BUCKET_CODES

from .models import AgingDaily, AgingRoll, Status
from .scope import institution_clause

CENT = Decimal("0.01")


def _share(part, whole) -> str | None:
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")))


def _institution(identity: Identity, column, q: dict) -> list:
    conditions = [institution_clause(identity, column)]
    if q.get("institution_id") is not None:
        identity.require_institution(q["institution_id"])
        conditions.append(column == q["institution_id"])
    return conditions


def _check_status(session: Session, identity: Identity, q: dict) -> None:
    status_id = q.get("status_id")
    if status_id is None:
        return
    status = session.get(Status, status_id)
    if status is None or not identity.may_access_institution(status.institution_id) or (
            q.get("institution_id") is not None and status.institution_id != q["institution_id"]):
        raise InvalidInput("Estatus desconocido",
                           {"status_id": ["No es un estatus de la institución"]})


GROUP_KEYS = {"institution": "institution_id", "stage": "stage", "status": "status_id"}


def aging(session: Session, identity: Identity, q: dict) -> dict:
    """The latest snapshot on or before ``as_of`` (in the caller's institutions), by bucket
    and the chosen groups (stage, status, institution)."""
    _check_status(session, identity, q)
    D = AgingDaily
    conditions = _institution(identity, D.institution_id, q)
    if q.get("stage"):
        conditions.append(D.stage == q["stage"])
    if q.get("status_id") is not None:
        conditions.append(D.status_id == q["status_id"])
    snapshot = session.execute(select(func.max(D.snapshot_date)).where(
        *conditions, D.snapshot_date <= q["as_of"])).scalar()
    groups = [g for g in ("institution", "stage", "status") if g in q["group_by"]]
    out = {"as_of": q["as_of"].isoformat(), "snapshot_date": snapshot and snapshot.isoformat(),
           "group_by": groups, "buckets": list(BUCKET_CODES), "rows": [],
           "totals": {"accounts": 0, "balance": "0.00", "overdue_amount": "0.00"}}
    if snapshot is None:
        return out
    keys = [getattr(D, GROUP_KEYS[g]) for g in groups]
    rows = session.execute(
        select(*keys, D.bucket, func.sum(D.accounts).label("accounts"),
               func.sum(D.balance).label("balance"),
               func.sum(D.overdue_amount).label("overdue_amount"))
        .where(*conditions, D.snapshot_date == snapshot)
        .group_by(*keys, D.bucket).order_by(*keys, D.bucket)).mappings().all()
    accounts = sum(r["accounts"] for r in rows)
    balance = sum((r["balance"] for r in rows), Decimal(0))
    overdue = sum((r["overdue_amount"] for r in rows), Decimal(0))
    out["rows"] = [{**{GROUP_KEYS[g]: r[GROUP_KEYS[g]] for g in groups},
                    "bucket": BUCKET_CODES[r["bucket"]], "accounts": int(r["accounts"]),
                    "balance": str(r["balance"].quantize(CENT)),
                    "overdue_amount": str(r["overdue_amount"].quantize(CENT)),
                    "share_accounts": _share(r["accounts"], accounts),
                    "share_balance": _share(r["balance"], balance)} for r in rows]
    for row in out["rows"]:
        if "status_id" in row and row["status_id"] == 0:
            row["status_id"] = None
    out["totals"] = {"accounts": accounts, "balance": str(balance.quantize(CENT)),
                     "overdue_amount": str(overdue.quantize(CENT))}
    return out


def roll_rates(session: Session, identity: Identity, q: dict) -> dict:
    """Per month in the range: of the accounts in each bucket at the previous month's last
    snapshot, the share in each bucket at this month's last."""
    R = AgingRoll
    first = q["date_from"].replace(day=1)
    conditions = [*_institution(identity, R.institution_id, q), R.month >= first,
                  R.month <= q["date_to"]]
    rows = session.execute(
        select(R.month, R.from_bucket, R.to_bucket, func.sum(R.accounts).label("accounts"),
               func.sum(R.balance).label("balance"), func.min(R.from_date).label("from_date"),
               func.max(R.to_date).label("to_date"))
        .where(*conditions).group_by(R.month, R.from_bucket, R.to_bucket)
        .order_by(R.month, R.from_bucket, R.to_bucket)).mappings().all()
    base: dict[tuple, int] = {}
    for r in rows:
        base[(r["month"], r["from_bucket"])] = base.get((r["month"], r["from_bucket"]), 0) \
            + r["accounts"]
    out = []
    for r in rows:
        direction = "same" if r["to_bucket"] == r["from_bucket"] else \
            ("worse" if r["to_bucket"] > r["from_bucket"] else "better")
        out.append({"month": r["month"].strftime("%Y-%m"),
                    "from_date": r["from_date"].isoformat(), "to_date": r["to_date"].isoformat(),
                    "from_bucket": BUCKET_CODES[r["from_bucket"]],
                    "to_bucket": BUCKET_CODES[r["to_bucket"]], "direction": direction,
                    "accounts": int(r["accounts"]), "balance": str(r["balance"].quantize(CENT)),
                    "share": _share(r["accounts"], base[(r["month"], r["from_bucket"])])})
    months = sorted({r["month"] for r in out})
    rolled = {m: sum(r["accounts"] for r in out if r["month"] == m and r["direction"] == "worse")
              for m in months}
    total = {m: sum(r["accounts"] for r in out if r["month"] == m) for m in months}
    return {"rows": out, "buckets": list(BUCKET_CODES),
            "months": [{"month": m, "accounts": total[m], "rolled_forward": rolled[m],
                        "roll_forward_rate": _share(rolled[m], total[m])} for m in months],
            "date_from": q["date_from"].isoformat(), "date_to": q["date_to"].isoformat()}

