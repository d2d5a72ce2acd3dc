"""Share links: a document or a whole debtor folder, for someone without a login.

The token is the project's own 256-bit random secret, shown once and stored as its
SHA-256 digest; the object store's signatures carry no expiry or revocation we could
rely on (s3rver checks none), so every use of a link comes here: unknown, revoked or
expired links are refused, a password is checked (Argon2) and throttled per link, and
only then is a presigned URL of a few minutes made. A link never reaches beyond its
document or folder: the version asked for must belong to it.

After a right password the holder gets a *grant* (the link id and an expiry, signed with
the platform's key) so the next clicks need not send the password again.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recaudo_common.config import settings
from recaudo_common.errors import Gone, InvalidInput, NotAuthenticated, NotFound, \
    PermissionDenied, Throttled
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from . import folders
from .models import Document, ShareAccess, ShareLink, Version
from .contracts import MAX_LINK_DAYS, AccessOut, DownloadOut, LinkOut

#: wrong passwords allowed per link in THROTTLE_WINDOW before it refuses to check more
MAX_WRONG_PASSWORDS = 5
THROTTLE_WINDOW = timedelta(minutes=15)
GRANT_SECONDS = 30 * 60

_hasher = PasswordHasher()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _grant_mac(payload: str) -> str:
    key = ("share-grant:" + settings().identity_key).encode()
    return base64.urlsafe_b64encode(hmac.new(key, payload.encode(), hashlib.sha256)
                                    .digest()).rstrip(b"=").decode()


def make_grant(link_id: int) -> str:
    payload = f"{link_id}.{int(time.time()) + GRANT_SECONDS}"
    return f"{payload}.{_grant_mac(payload)}"


def grant_valid(grant: str | None, link_id: int) -> bool:
    if not grant or grant.count(".") != 2:
        return False
    payload, mac = grant.rsplit(".", 1)
    granted_id, _, until = payload.partition(".")
    return hmac.compare_digest(mac, _grant_mac(payload)) and granted_id == str(link_id) \
        and until.isdigit() and int(until) > time.time()


def state_of(link: ShareLink, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    if link.revoked_at is not None:
        return "revoked"
    return "expired" if link.expires_at <= now else "active"


def create(session: Session, identity: Identity, debtor: dict, data: dict) -> tuple[ShareLink, str]:
    """A new link and its token (the only time the token is known)."""
    now = datetime.now(timezone.utc)
    if data["expires_at"] <= now:
        raise InvalidInput("Datos inválidos", {"expires_at": ["La fecha de vencimiento ya pasó"]})
    if data["expires_at"] > now + timedelta(days=MAX_LINK_DAYS):
        raise InvalidInput("Datos inválidos", {
            "expires_at": [f"Una liga vence a lo más en {MAX_LINK_DAYS} días"]})
    document = None
    if data["document_id"] is not None:
        document = session.get(Document, data["document_id"])
        if document is None or document.debtor_id != debtor["id"]:
            raise InvalidInput("Datos inválidos",
                               {"document_id": ["El documento no está en la carpeta de este deudor"]})
    token = secrets.token_urlsafe(32)
    label = data["label"] or (document.name if document else f"Expediente de {debtor['name']}")
    link = ShareLink(token_hash=token_hash(token), institution_id=debtor["institution_id"],
                     debtor_id=debtor["id"], document_id=data["document_id"], label=label,
                     password_hash=_hasher.hash(data["password"]) if data["password"] else None,
                     expires_at=data["expires_at"], created_by=identity.user_id)
    session.add(link)
    session.flush()
    return link, token


def _access_counts(session: Session, link_ids: list[int]) -> dict[int, tuple[int, datetime]]:
    rows = session.execute(select(ShareAccess.link_id, func.count(), func.max(ShareAccess.at))
                           .where(ShareAccess.link_id.in_(link_ids or [-1]),
                                  ShareAccess.outcome.in_(("listed", "downloaded")))
                           .group_by(ShareAccess.link_id)).all()
    return {link_id: (count, last) for link_id, count, last in rows}


def describe(session: Session, links: list[ShareLink]) -> list[dict]:
    counts = _access_counts(session, [link.id for link in links])
    names = dict(session.execute(select(Document.id, Document.name).where(
        Document.id.in_([link.document_id for link in links if link.document_id] or [-1]))).all())
    out = []
    for link in links:
        accesses, last = counts.get(link.id, (0, None))
        out.append(LinkOut().dump({
            **{column.key: getattr(link, column.key) for column in ShareLink.__table__.columns},
            "has_password": link.password_hash is not None, "state": state_of(link),
            "document_name": names.get(link.document_id), "accesses": accesses,
            "last_access_at": last}))
    return out


def listing(session: Session, identity: Identity, query: dict) -> dict:
    """The links of the caller's institutions (one debtor's, when asked), newest first."""
    where = []
    if identity.institutions is not None:
        where.append(ShareLink.institution_id.in_(list(identity.institutions) or [-1]))
    if query.get("institution_id") is not None:
        where.append(ShareLink.institution_id == query["institution_id"])
    if query.get("debtor_id") is not None:
        where.append(ShareLink.debtor_id == query["debtor_id"])
    if query["state"] == "active":
        where += [ShareLink.revoked_at.is_(None), ShareLink.expires_at > func.now()]
    total = session.execute(select(func.count()).select_from(ShareLink).where(*where)).scalar_one()
    links = session.execute(select(ShareLink).where(*where)
                            .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
                            .offset((query["page"] - 1) * query["per_page"])
                            .limit(query["per_page"])).scalars().all()
    return page_of(describe(session, links), total, query["page"], query["per_page"])


def visible_link(session: Session, identity: Identity, link_id: int) -> ShareLink:
    link = session.get(ShareLink, link_id)
    if link is None or not identity.may_access_institution(link.institution_id):
        raise NotFound("Liga no encontrada")
    return link


def revoke(session: Session, identity: Identity, link: ShareLink) -> None:
    if link.revoked_at is None:
        link.revoked_at = datetime.now(timezone.utc)
        link.revoked_by = identity.user_id


def accesses(session: Session, link: ShareLink, page: int, per_page: int) -> dict:
    where = ShareAccess.link_id == link.id
    total = session.execute(select(func.count()).select_from(ShareAccess).where(where)).scalar_one()
    rows = session.execute(select(ShareAccess).where(where)
                           .order_by(ShareAccess.at.desc(), ShareAccess.id.desc())
                           .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return page_of(AccessOut(many=True).dump(rows), total, page, per_page)


# --- using a link (no login: the token is the credential) ------------------------------------

def access(link: ShareLink, outcome: str, address, version_id=None) -> ShareAccess:
    """A line of the access log."""
    return ShareAccess(link_id=link.id, outcome=outcome, address=address, version_id=version_id)


def _within(link: ShareLink) -> list:
    """The documents a link reaches: its one document, or its debtor's folder."""
    where = [Document.debtor_id == link.debtor_id]
    if link.document_id is not None:
        where.append(Document.id == link.document_id)
    return where


def documents_of(session: Session, link: ShareLink) -> list[dict]:
    documents = session.execute(select(Document).where(*_within(link))
                                .order_by(Document.category, func.lower(Document.name))).scalars().all()
    return [folders.describe(session, d) for d in documents]


def check(session: Session, request: dict) -> tuple[ShareLink, str | None, str | None]:
    """The link a holder presents, checked: ``(link, refusal outcome, grant)``. A refusal is
    recorded by the caller in its own committed transaction, then raised."""
    link = session.execute(select(ShareLink).where(
        ShareLink.token_hash == token_hash(request["token"]))).scalar_one_or_none()
    if link is None:
        raise NotFound("Liga desconocida")
    state = state_of(link)
    if state != "active":
        return link, state, None
    if link.password_hash is None or grant_valid(request["grant"], link.id):
        return link, None, request["grant"]
    if not request["password"]:
        raise NotAuthenticated("Esta liga pide contraseña", {"password": ["Escriba la contraseña"]})
    wrong = session.execute(select(func.count()).select_from(ShareAccess).where(
        ShareAccess.link_id == link.id, ShareAccess.outcome == "wrong_password",
        ShareAccess.at > func.now() - THROTTLE_WINDOW)).scalar_one()
    if wrong >= MAX_WRONG_PASSWORDS:
        return link, "throttled", None
    try:
        _hasher.verify(link.password_hash, request["password"])
    except (VerifyMismatchError, InvalidHashError):
        return link, "wrong_password", None
    return link, None, make_grant(link.id)


REFUSALS = {
    "expired": lambda: Gone("La liga venció", {"token": ["La liga venció"]}),
    "revoked": lambda: Gone("La liga fue revocada", {"token": ["La liga fue revocada"]}),
    # (at the latest when the window has passed, the wrong tries are forgotten)
    "throttled": lambda: Throttled("Demasiados intentos; espere unos minutos",
                                   {"password": ["Demasiados intentos; espere unos minutos"]},
                                   retry_after=int(THROTTLE_WINDOW.total_seconds())),
    "wrong_password": lambda: PermissionDenied("Contraseña incorrecta",
                                               {"password": ["Contraseña incorrecta"]}),
}


def open_link(session: Session, link: ShareLink, request: dict, grant: str | None) -> dict:
    """What the link shows (its documents with their versions) or, for ``version_id``, a
    fresh short-lived download of that version if it is within the link (as ``LinkView``
    describes)."""
    if request["version_id"] is not None:
        version = session.execute(select(Version).join(Document, Document.id == Version.document_id)
                                  .where(Version.id == request["version_id"], *_within(link))
                                  ).scalar_one_or_none()
        if version is None:
            raise NotFound("Documento no encontrado en esta liga")
        session.add(access(link, "downloaded", request["address"], version.id))
        return {"download": DownloadOut().dump(folders.download(version))}
    session.add(access(link, "listed", request["address"]))
    return {"label": link.label, "expires_at": link.expires_at.isoformat(), "grant": grant,
            "has_password": link.password_hash is not None,
            "documents": documents_of(session, link)}
