"""The debtor portal's access: personal links an agent sends, opened with a second factor
the debtor knows, and the debtor sessions they open.

A link's token is random (256 bits), stored hashed, used once and expiring; opening it
asks what the institution chose (date of birth, or the last four characters of an
account number or of the RFC), which the portfolio checks (auth never holds the debtor's
data). Five wrong answers lock the link for 30 minutes. Every refusal - an unknown,
expired, used, locked or other institution's link, a wrong answer - is the same
``NotAuthenticated`` with the same words, so nothing tells whether a link, a name or an
account exists. A session dies after 15 idle minutes; its identity is a debtor principal
(``Identity.debtor``): one debtor of one institution, no staff permission.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from recaudo_common.config import settings
from recaudo_common.errors import NotAuthenticated
from recaudo_common.identity import Identity, sign

from . import audit
from .credentials import digest, new_secret
from .models import PortalLink, PortalSession, PortalSettings

MAX_WRONG_ANSWERS = 5
LOCK_FOR = timedelta(minutes=30)
SESSION_IDLE = timedelta(minutes=15)
LINK_PREFIX = "pl_"
SESSION_PREFIX = "ps_"
#: the one answer to every refusal (no page tells a link, name or account exists)
REFUSED = "No pudimos verificar sus datos. Revise su respuesta o pida una liga nueva."
DEFAULTS = {"second_factor": "birth_date", "link_ttl_hours": 72}


def now() -> datetime:
    return datetime.now(timezone.utc)


def settings_of(session: Session, institution_id: int) -> dict:
    row = session.get(PortalSettings, institution_id)
    values = DEFAULTS if row is None else {"second_factor": row.second_factor,
                                           "link_ttl_hours": row.link_ttl_hours}
    return {"institution_id": institution_id, **values}


def save_settings(session: Session, identity: Identity, institution_id: int, data: dict) -> dict:
    statement = insert(PortalSettings).values(institution_id=institution_id, **data)
    session.execute(statement.on_conflict_do_update(
        index_elements=[PortalSettings.institution_id],
        set_={**data, "updated_at": now()}))
    audit.record(session, "portal_settings_changed", actor=identity,
                 institution_id=institution_id, **data)
    return settings_of(session, institution_id)


def create_link(session: Session, identity: Identity, debtor: dict, channel: str,
                sent_to: str | None, key: str | None = None) -> dict:
    """A new link for ``debtor`` (portfolio's ``debtor_scope`` as the agent sees it); the
    token is answered once, here. With ``key`` (the platform's, e.g. a campaign run's
    message to this debtor) it is one link per key: asked again - a retry, a redelivery,
    another instance - the same link and token are answered (``keyed_token``)."""
    settings = settings_of(session, debtor["institution_id"])
    token = keyed_token(debtor["id"], key) if key else new_secret(LINK_PREFIX)
    expires_at = now() + timedelta(hours=settings["link_ttl_hours"])
    made = session.execute(insert(PortalLink).values(
        token_hash=digest(token), institution_id=debtor["institution_id"],
        debtor_id=debtor["id"], created_by=identity.user_id, channel=channel,
        sent_to=sent_to, expires_at=expires_at).on_conflict_do_nothing(
        index_elements=[PortalLink.token_hash]).returning(PortalLink.id)).scalar_one_or_none()
    if made is None:   # the key's link exists: the same one (a hash clash is not credible)
        link = session.execute(select(PortalLink).where(
            PortalLink.token_hash == digest(token))).scalar_one()
        if link.debtor_id != debtor["id"]:
            raise NotAuthenticated(REFUSED)
        made, expires_at = link.id, link.expires_at
    else:
        audit.record(session, "portal_link_created", actor=identity, link_id=made,
                     debtor_id=debtor["id"], institution_id=debtor["institution_id"],
                     channel=channel, **({"key": key} if key else {}))
    return {"link_id": made, "token": token, "institution_id": debtor["institution_id"],
            "debtor_id": debtor["id"], "expires_at": expires_at,
            "second_factor": settings["second_factor"]}


def keyed_token(debtor_id: int, key: str) -> str:
    """The token of the platform's link ``key`` for a debtor: an HMAC under the identity
    key, so a retry gets the same link back without the token being stored anywhere (only
    its hash is, as for any link). Whoever holds the identity key can sign the platform's
    identity and ask for such a link anyway, so this gives no one anything more."""
    mac = hmac.new(settings().identity_key.encode(), f"portal-link:{debtor_id}:{key}".encode(),
                   hashlib.sha256).digest()
    return LINK_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def usable_link(session: Session, institution_id: int, token: str) -> PortalLink:
    """The link ``token`` names, locked for this attempt, if it may be answered now."""
    link = session.execute(select(PortalLink).where(PortalLink.token_hash == digest(token))
                           .with_for_update()).scalar_one_or_none()
    moment = now()
    if link is None or link.institution_id != institution_id or link.used_at is not None \
            or link.expires_at <= moment:
        audit.record(session, "portal_link_refused", actor_name="portal",
                     link_id=link.id if link else None, institution_id=institution_id)
        raise NotAuthenticated(REFUSED)
    if link.locked_until is not None and link.locked_until > moment:
        audit.record(session, "portal_link_refused", actor_name="portal", link_id=link.id,
                     institution_id=institution_id, locked=True)
        raise NotAuthenticated(REFUSED)
    return link


def wrong_answer(session: Session, link: PortalLink, address: str | None) -> None:
    """Count a wrong answer; the fifth locks the link for ``LOCK_FOR`` (then five more)."""
    link.failed_attempts += 1
    locked = link.failed_attempts >= MAX_WRONG_ANSWERS
    if locked:
        link.failed_attempts = 0
        link.locked_until = now() + LOCK_FOR
    audit.record(session, "portal_link_locked" if locked else "portal_factor_failed",
                 actor_name=f"deudor:{link.debtor_id}", address=address, link_id=link.id,
                 debtor_id=link.debtor_id, institution_id=link.institution_id)
    raise NotAuthenticated(REFUSED)


def open_session(session: Session, link: PortalLink, address: str | None,
                 language: str = "es") -> dict:
    """The link used (once) and a debtor session opened on it."""
    moment = now()
    link.used_at = moment
    session_token = new_secret(SESSION_PREFIX)
    session.add(PortalSession(id_hash=digest(session_token), link_id=link.id,
                              institution_id=link.institution_id, debtor_id=link.debtor_id,
                              language=language, address=address))
    audit.record(session, "portal_session_opened", actor_name=f"deudor:{link.debtor_id}",
                 address=address, link_id=link.id, debtor_id=link.debtor_id,
                 institution_id=link.institution_id)
    identity = Identity.debtor(link.institution_id, link.debtor_id, language)
    return {"session_token": session_token, "identity": sign(identity),
            "debtor_id": link.debtor_id, "institution_id": link.institution_id,
            "idle_timeout": int(SESSION_IDLE.total_seconds())}


def resolve_session(session: Session, session_token: str) -> dict:
    """The debtor principal of a live session (touched: 15 more idle minutes)."""
    key = digest(session_token)
    row = session.get(PortalSession, key)
    moment = now()
    if row is None or row.ended_at is not None:
        raise NotAuthenticated("Sesión inválida")
    if row.last_seen_at + SESSION_IDLE <= moment:
        session.execute(update(PortalSession).where(PortalSession.id_hash == key)
                        .values(ended_at=moment))
        audit.record(session, "portal_session_expired", actor_name=f"deudor:{row.debtor_id}",
                     debtor_id=row.debtor_id, institution_id=row.institution_id)
        raise NotAuthenticated("La sesión expiró; abra de nuevo su liga o pida una nueva")
    row.last_seen_at = moment
    identity = Identity.debtor(row.institution_id, row.debtor_id, row.language)
    return {"identity": sign(identity), "debtor_id": row.debtor_id,
            "institution_id": row.institution_id, "language": row.language,
            "idle_timeout": int(SESSION_IDLE.total_seconds())}


def close_session(session: Session, session_token: str) -> None:
    row = session.get(PortalSession, digest(session_token))
    if row is not None and row.ended_at is None:
        row.ended_at = now()
        audit.record(session, "portal_logout", actor_name=f"deudor:{row.debtor_id}",
                     debtor_id=row.debtor_id, institution_id=row.institution_id)
