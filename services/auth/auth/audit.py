"""The security audit log: one function writes it, one query reads it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from .models import AuditEntry

ACTIONS = (
    "login_succeeded", "login_failed", "login_throttled", "account_locked", "account_unlocked",
    "logout", "session_expired", "token_issued", "token_refreshed", "token_reuse_detected",
    "password_changed", "password_reset", "user_created", "user_updated", "user_disabled",
    "user_enabled", "profile_created", "permissions_changed", "team_changed",
    "api_key_created", "api_key_revoked",
    # the debtor portal (portal.py)
    "portal_settings_changed", "portal_link_created", "portal_link_refused",
    "portal_factor_failed", "portal_link_locked", "portal_session_opened",
    "portal_session_expired", "portal_logout",
)


def record(session: Session, action: str, *, actor: Identity | None = None,
           actor_name: str | None = None, target_user_id: int | None = None,
           address: str | None = None, **details) -> None:
    assert action in ACTIONS, action
    session.add(AuditEntry(
        action=action,
        actor_id=actor.user_id if actor else None,
        actor=actor.username if actor else actor_name,
        target_user_id=target_user_id,
        address=address or None,
        details=details,
    ))


def search(session: Session, *, action: str | None = None, username: str | None = None,
           since: datetime | None = None, until: datetime | None = None,
           page: int = 1, per_page: int = 50) -> dict:
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
    if username:
        query = query.where(AuditEntry.actor.icontains(username, autoescape=True))
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                           .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return page_of(rows, total, page, per_page)
