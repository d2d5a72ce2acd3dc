"""Disputes (aclaraciones): opened on an account with a reason and evidence, due within the
institution's SLA, resolved once with an outcome. While one is open the account is on
hold in the queues (they follow ``dispute_opened`` / ``dispute_resolved``)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from recaudo_common.errors import Conflict, NotFound
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from . import catalogue
from .models import Dispute, InstitutionSettings
from .contracts import DisputeOut


def open_dispute(session: Session, db, identity: Identity, account: dict, data: dict) -> dict:
    settings = catalogue.settings_of(session, account["institution_id"])
    # one open dispute per account: the unique index guarantees it, this answers it clearly
    busy = session.execute(select(Dispute.id).where(Dispute.account_id == account["id"],
                                                    Dispute.state == "open")
                           .with_for_update()).first()
    if busy:
        raise Conflict("La cuenta ya tiene una aclaración abierta",
                       {"account_id": [f"Aclaración {busy[0]} abierta"]})
    today = catalogue.today_in(settings.time_zone)
    dispute = Dispute(institution_id=account["institution_id"], account_id=account["id"],
                      debtor_id=account["debtor_id"], reason=data["reason"],
                      evidence=data["evidence"], opened_by=identity.user_id,
                      owner_id=data.get("owner_id") or identity.user_id,
                      due_date=today + timedelta(days=settings.dispute_sla_days), state="open")
    try:
        with session.begin_nested():  # a concurrent open of the same account lost the race
            session.add(dispute)
            session.flush()
    except IntegrityError:
        raise Conflict("La cuenta ya tiene una aclaración abierta",
                       {"account_id": ["Ya tiene una aclaración abierta"]}) from None
    db.emit(session, "dispute_opened", {
        "dispute_id": dispute.id, "account_id": dispute.account_id,
        "institution_id": dispute.institution_id, "owner_id": dispute.owner_id,
        "due_date": dispute.due_date})
    return DisputeOut().dump(dispute)


def attach_document(session: Session, dispute_id: int, version_id: int, name: str) -> dict:
    """The document sent with the dispute (the documents service filed it with it)."""
    dispute = session.get(Dispute, dispute_id)
    dispute.document_version_id, dispute.document_name = version_id, name[:255]
    session.flush()
    return DisputeOut().dump(dispute)


def resolve(session: Session, db, identity: Identity, dispute_id: int, data: dict) -> dict:
    dispute = session.get(Dispute, dispute_id, with_for_update=True)
    if dispute is None or not identity.may_access_institution(dispute.institution_id):
        raise NotFound("Aclaración no encontrada")
    if dispute.state != "open":
        raise Conflict("La aclaración ya fue resuelta", {"dispute_id": ["Ya resuelta"]})
    dispute.state = "resolved"
    dispute.outcome = data["outcome"]
    dispute.corrected_balance = data.get("corrected_balance")
    dispute.resolution_note = data["note"]
    dispute.resolved_by = identity.user_id
    dispute.resolved_at = datetime.now(timezone.utc)
    session.flush()
    db.emit(session, "dispute_resolved", {
        "dispute_id": dispute.id, "account_id": dispute.account_id,
        "institution_id": dispute.institution_id, "outcome": dispute.outcome,
        "corrected_balance": dispute.corrected_balance})
    return DisputeOut().dump(dispute)


def for_account(session: Session, account_id: int) -> list[dict]:
    rows = session.execute(select(Dispute).where(Dispute.account_id == account_id)
                           .order_by(Dispute.id.desc())).scalars().all()
    return DisputeOut(many=True).dump(rows)


def overdue(session: Session, identity: Identity, q: dict) -> dict:
    """Open disputes past their due date (in each institution's zone), oldest due first."""
    zone = func.coalesce(select(InstitutionSettings.time_zone).where(
        InstitutionSettings.institution_id == Dispute.institution_id).scalar_subquery(),
        catalogue.SETTINGS_DEFAULTS["time_zone"])
    conditions = [Dispute.state == "open",
                  Dispute.due_date < func.date(func.timezone(zone, func.now()))]
    if not identity.all_institutions:
        conditions.append(Dispute.institution_id.in_(identity.institutions or (-1,)))
    if q.get("institution_id") is not None:
        conditions.append(Dispute.institution_id == q["institution_id"])
    total = session.execute(select(func.count()).select_from(Dispute).where(*conditions)
                            ).scalar_one()
    rows = session.execute(select(Dispute).where(*conditions)
                           .order_by(Dispute.due_date, Dispute.id)
                           .offset((q["page"] - 1) * q["per_page"]).limit(q["per_page"])
                           ).scalars().all()
    return page_of(DisputeOut(many=True).dump(rows), total, q["page"], q["per_page"])
