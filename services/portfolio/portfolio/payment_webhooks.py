"""Payments posted by providers and banks (``POST /api/v1/webhooks/payments/<provider>``).

The provider signs each request: ``X-Recaudo-Timestamp`` (Unix seconds) and
``X-Recaudo-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under its secret>``.
A request older (or newer) than five minutes, with a bad signature or for an unknown or
inactive provider is refused alike (401: nobody learns which providers exist). The payment
is kept once per (provider, payment id): a retry answers what the first did, the same id
with other contents is a conflict. Its reference (``payment_refs``) names the account,
credited through ``crediting`` as a payments file would; a reference nobody holds (or a
currency not the account's) lands in the triage list, where a supervisor assigns the
payment to an account or dismisses it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from recaudo_common.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from recaudo_common.localtime import today_in
from recaudo_common.sealing import seal, unseal
from recaudo_common.validation import load

from . import crediting, payment_refs, search
from .models import Account, Institution, PaymentNotification, PaymentProvider
from .contracts import WebhookPayment

SEAL_LABEL = b"recaudo portfolio payment provider secrets v1"
#: a signature older or newer than this is refused (replays)
TOLERANCE_SECONDS = 300
REFUSED = "Firma inválida o vencida"


def signature(secret: str, timestamp: str, body: str) -> str:
    """What a provider sends in ``X-Recaudo-Signature`` (tests and providers' SDKs)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "v1=" + mac.hexdigest()


def _verify(session, provider_name: str, body: str, timestamp, signed) -> PaymentProvider:
    provider = session.execute(select(PaymentProvider).where(
        PaymentProvider.name == str(provider_name or ""))).scalar_one_or_none()
    secret = unseal(SEAL_LABEL, provider.secret_sealed) if provider else None
    try:
        age = abs(time.time() - int(str(timestamp)))
    except (TypeError, ValueError):
        age = None
    expected = signature(secret or secrets.token_hex(16), str(timestamp), body)
    good = hmac.compare_digest(expected.encode(), str(signed or "").encode("utf-8", "replace"))
    if provider is None or not provider.active or secret is None or not good:
        raise NotAuthenticated(REFUSED, {"signature": ["Firma inválida"]})
    if age is None or age > TOLERANCE_SECONDS:
        raise NotAuthenticated(REFUSED, {"timestamp": ["Más de 5 minutos de diferencia"]})
    return provider


def _answer(row: PaymentNotification, duplicate: bool) -> dict:
    return {"id": row.id, "status": row.status, "duplicate": duplicate}


def receive(session, provider_name: str, body: str, timestamp, signed) -> dict:
    provider = _verify(session, provider_name, body, timestamp, signed)
    try:
        parsed = json.loads(body)
    except ValueError:
        raise InvalidInput("El cuerpo no es JSON", {"_schema": ["JSON inválido"]}) from None
    data = load(WebhookPayment(), parsed)
    row = session.execute(insert(PaymentNotification).values(
        provider_id=provider.id, institution_id=provider.institution_id,
        payment_id=data["payment_id"], reference=data["reference"].strip(),
        amount=data["amount"], currency=data["currency"].upper(), paid_at=data["paid_at"],
        status="unmatched").on_conflict_do_nothing()
        .returning(PaymentNotification.id)).scalar_one_or_none()
    if row is None:   # a retry: answered as the first time, never credited twice
        first = session.execute(select(PaymentNotification).where(
            PaymentNotification.provider_id == provider.id,
            PaymentNotification.payment_id == data["payment_id"])).scalar_one()
        if (first.reference, first.amount) != (data["reference"].strip(), data["amount"]):
            raise Conflict("Ese pago ya se recibió con otros datos",
                           {"payment_id": ["Ya recibido con otra referencia o monto"]})
        return _answer(first, True)
    notification = session.get(PaymentNotification, row)
    account_id = payment_refs.account_for(session, provider.institution_id,
                                          notification.reference)
    account = session.get(Account, account_id) if account_id else None
    if account is None:
        notification.note = "Referencia desconocida"
    elif account.currency != notification.currency:
        notification.note = f"Moneda {notification.currency}; la cuenta es en {account.currency}"
    else:
        _credit(session, notification, account, provider.name, "credited")
    session.flush()
    return _answer(notification, False)


def _credit(session, notification: PaymentNotification, account: Account, provider_name: str,
            status: str) -> None:
    zone = session.get(Institution, account.institution_id).time_zone
    value_date = notification.paid_at.astimezone(_zone(zone)).date()
    movement = crediting.credit(session, account.id, notification.amount, value_date,
                                f"{provider_name}:{notification.payment_id}", today_in(zone))
    notification.status, notification.account_id = status, account.id
    notification.movement_id = movement


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# --- providers: an administrator's data -------------------------------------------------------

def provider_out(row: PaymentProvider) -> dict:
    return {"id": row.id, "name": row.name, "institution_id": row.institution_id,
            "active": row.active, "has_secret": bool(row.secret_sealed),
            "created_at": row.created_at}


def list_providers(session, identity) -> list[dict]:
    rows = session.execute(select(PaymentProvider).order_by(PaymentProvider.name)).scalars()
    return [provider_out(r) for r in rows if identity.may_access_institution(r.institution_id)]


def save_provider(session, identity, data: dict, provider_id=None) -> dict:
    identity.require_institution(data["institution_id"])
    if session.get(Institution, data["institution_id"]) is None:
        raise NotFound("Institución no encontrada", {"institution_id": ["No existe"]})
    clash = session.execute(select(PaymentProvider.id).where(
        PaymentProvider.name == data["name"], PaymentProvider.id != (provider_id or 0))).first()
    if clash:
        raise Conflict("Ya existe ese proveedor", {"name": ["Ya existe"]})
    if provider_id is None:
        if not data.get("secret"):
            raise InvalidInput("Falta el secreto", {"secret": ["Obligatorio al crear"]})
        row = PaymentProvider(name=data["name"], institution_id=data["institution_id"],
                              active=data["active"], secret_sealed=seal(SEAL_LABEL, data["secret"]))
        session.add(row)
    else:
        row = session.get(PaymentProvider, provider_id)
        if row is None or not identity.may_access_institution(row.institution_id):
            raise NotFound("Proveedor no encontrado")
        row.name, row.institution_id, row.active = data["name"], data["institution_id"], data["active"]
        if data.get("secret"):
            row.secret_sealed = seal(SEAL_LABEL, data["secret"])
    session.flush()
    return provider_out(row)


# --- the triage list ---------------------------------------------------------------------------

def notification_out(row: PaymentNotification, provider: str) -> dict:
    return {"id": row.id, "provider": provider, "institution_id": row.institution_id,
            "payment_id": row.payment_id, "reference": row.reference, "amount": row.amount,
            "currency": row.currency, "paid_at": row.paid_at, "received_at": row.received_at,
            "status": row.status, "account_id": row.account_id, "movement_id": row.movement_id,
            "note": row.note}


def triage_page(session, identity, query: dict) -> dict:
    where = [PaymentNotification.status == query["status"]]
    if identity.institutions is not None:
        where.append(PaymentNotification.institution_id.in_(identity.institutions or (-1,)))
    if query.get("institution_id") is not None:
        where.append(PaymentNotification.institution_id == query["institution_id"])
    total = session.execute(select(func.count()).select_from(PaymentNotification)
                            .where(*where)).scalar_one()
    rows = session.execute(
        select(PaymentNotification, PaymentProvider.name)
        .join(PaymentProvider, PaymentProvider.id == PaymentNotification.provider_id)
        .where(*where).order_by(PaymentNotification.received_at.desc(), PaymentNotification.id.desc())
        .offset((query["page"] - 1) * query["per_page"]).limit(query["per_page"])).all()
    return {"items": [notification_out(n, p) for n, p in rows], "total": total,
            "page": query["page"], "per_page": query["per_page"]}


def _triaged(session, identity, notification_id: int) -> tuple[PaymentNotification, str]:
    found = session.execute(
        select(PaymentNotification, PaymentProvider.name)
        .join(PaymentProvider, PaymentProvider.id == PaymentNotification.provider_id)
        .where(PaymentNotification.id == notification_id)
        .with_for_update(of=PaymentNotification)).first()
    if found is None or not identity.may_access_institution(found[0].institution_id):
        raise NotFound("Pago no encontrado")
    if found[0].status != "unmatched":
        raise Conflict("Ese pago ya no está por asignar", {"status": [found[0].status]})
    return found


def assign(session, identity, notification_id: int, data: dict) -> dict:
    """Credit a triaged payment to an account of its institution the caller may read."""
    notification, provider = _triaged(session, identity, notification_id)
    account = search.visible_account(session, identity, data["account_id"])
    if account.institution_id != notification.institution_id:
        raise NotFound("Cuenta no encontrada", {"account_id": ["No es de la institución del pago"]})
    _credit(session, notification, account, provider, "assigned")
    notification.note = data.get("note") or notification.note
    notification.resolved_by, notification.resolved_at = identity.user_id, datetime.now(timezone.utc)
    session.flush()
    return notification_out(notification, provider)


def dismiss(session, identity, notification_id: int, data: dict) -> dict:
    notification, provider = _triaged(session, identity, notification_id)
    notification.status, notification.note = "dismissed", data["note"]
    notification.resolved_by, notification.resolved_at = identity.user_id, datetime.now(timezone.utc)
    session.flush()
    return notification_out(notification, provider)

