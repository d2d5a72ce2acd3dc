"""Do-not-contact on a debtor's phones, e-mails and addresses: set or lifted by a person
(with a reason) or by an import, each change kept in ``do_not_contact_changes``.

The flag lives on the contact (``Phone.do_not_call``, ``Email.do_not_contact``,
``Address.do_not_contact``), where the contact policy reads it. Anyone who may log a
contact (``activities.log``) or edit debtors (``portfolio.write``) records a debtor's
request not to be contacted; lifting it takes ``portfolio.write``.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from recaudo_common.errors import Conflict, NotFound, PermissionDenied
from recaudo_common.identity import Identity

from .models import DO_NOT_CONTACT_FLAGS, Address, DoNotContactChange, Email, Phone

MODELS = {"phone": Phone, "email": Email, "address": Address}


def describe(channel: str, contact) -> str:
    """The contact as people read it in the history (kept after the contact is gone)."""
    if channel == "phone":
        return contact.number
    if channel == "email":
        return contact.address
    parts = [contact.street, contact.neighborhood, contact.municipality, contact.state,
             contact.postal_code]
    return ", ".join(p for p in parts if p)[:300]


def require_permission(identity: Identity, wanted: bool) -> None:
    """Marking takes ``activities.log`` or ``portfolio.write``; lifting, ``portfolio.write``."""
    if identity.has("portfolio.write") or (wanted and identity.has("activities.log")):
        return
    raise PermissionDenied(
        "Quitar una marca de no contactar requiere permiso para editar deudores" if not wanted
        else "No tiene permiso para marcar contactos", {"permission": ["portfolio.write"]})


def set_flag(session: Session, identity: Identity, debtor_id: int,
             data: dict) -> DoNotContactChange:
    """Set or lift the flag of one of the debtor's contacts (the caller may already do it
    and sees the debtor) and record the change. A contact of another debtor answers 404
    naming it; a flag already as asked, 409."""
    wanted = data["do_not_contact"]
    channel = data["channel"]
    model = MODELS[channel]
    contact = session.execute(select(model).where(
        model.id == data["contact_id"], model.debtor_id == debtor_id)
        .with_for_update()).scalar_one_or_none()
    if contact is None:
        raise NotFound("Contacto no encontrado", {"contact_id": ["No es de este deudor"]})
    flag = DO_NOT_CONTACT_FLAGS[channel]
    if getattr(contact, flag) == wanted:
        message = "Ya está marcado como no contactar" if wanted else "No está marcado"
        raise Conflict(message, {"do_not_contact": [message]})
    setattr(contact, flag, wanted)
    change = DoNotContactChange(
        debtor_id=debtor_id, channel=channel, contact_id=contact.id,
        contact=describe(channel, contact), do_not_contact=wanted, reason=data["reason"].strip(),
        changed_by=identity.user_id, changed_by_name=identity.username)
    session.add(change)
    session.flush()
    return change


def history(session: Session, debtor_id: int) -> list[DoNotContactChange]:
    """The debtor's changes, newest first."""
    return session.execute(select(DoNotContactChange)
                           .where(DoNotContactChange.debtor_id == debtor_id)
                           .order_by(DoNotContactChange.changed_at.desc(),
                                     DoNotContactChange.id.desc())).scalars().all()
