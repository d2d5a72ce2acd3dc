"""Tables of the auth service, all in its own ``auth`` schema."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer,
                        String, Text, func, text)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB  # ARRAY: for contained_by
from sqlalchemy.orm import Mapped, mapped_column, relationship

from recaudo_common.models import service_base

Base = service_base("auth")


def _now():
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Profile(Base):
    """A named permission set an admin edits (Administrador, Gestor, ...)."""

    __tablename__ = "profiles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    permissions: Mapped[list[str]] = mapped_column(ARRAY(String(60)), nullable=False,
                                                   server_default="{}")
    #: creditor profiles bind each user to exactly one institution
    single_institution: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                     server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(120), nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    language: Mapped[str] = mapped_column(String(5), nullable=False, server_default="es")
    #: the zone times are shown in (an IANA name); None: the institution's zone
    time_zone: Mapped[str | None] = mapped_column(String(60))
    profile_id: Mapped[int] = mapped_column(ForeignKey("auth.profiles.id"), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(Text)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: every institution (staff of the collection agency) or only ``institutions``
    all_institutions: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                   server_default=text("false"))
    institutions: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False,
                                                    server_default="{}")
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    profile: Mapped[Profile] = relationship(lazy="joined")


class Team(Base):
    """A supervisor and the agents under them."""

    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    supervisor_id: Mapped[int] = mapped_column(ForeignKey("auth.users.id"), nullable=False)
    created_at: Mapped[datetime] = _now()


class TeamMember(Base):
    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(ForeignKey("auth.teams.id", ondelete="CASCADE"),
                                         primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("auth.users.id"), primary_key=True)


class WebSession(Base):
    """A browser session; the cookie carries only the random id, stored here hashed."""

    __tablename__ = "sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("auth.users.id"), nullable=False, index=True)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(300))


class ApiToken(Base):
    """Access and refresh tokens of the API, stored hashed.

    Tokens minted together share a ``family``: presenting a refresh token that was
    already used revokes the whole family (a stolen token is worth nothing).
    """

    __tablename__ = "api_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)  # access | refresh
    family: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("auth.users.id"), nullable=False, index=True)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """Long-lived keys of partner systems (Integración profile); shown once, kept hashed."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("auth.users.id"), nullable=False)
    created_by: Mapped[int] = mapped_column(ForeignKey("auth.users.id"), nullable=False)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """Failed logins, counted per username and per address for throttling."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), nullable=False)
    address: Mapped[str | None] = mapped_column(INET)
    at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_login_failures_username_at", "username", "at"),
                      Index("ix_login_failures_address_at", "address", "at"))


class AuditEntry(Base):
    """The security audit log: logins, failures, lockouts, permission changes, disables."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = _now()
    action: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(60))
    target_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    address: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    __table_args__ = (Index("ix_audit_log_at", "at"),)



SECOND_FACTORS = ("birth_date", "account_last4", "rfc_last4")


class PortalSettings(Base):
    """Per institution: what a debtor answers after opening a portal link, and how long a
    link stands (portal.py). Defaults until an administrator writes them."""

    __tablename__ = "portal_settings"
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    second_factor: Mapped[str] = mapped_column(String(20), nullable=False,
                                               server_default="birth_date")
    link_ttl_hours: Mapped[int] = mapped_column(Integer, nullable=False, server_default="72")
    updated_at: Mapped[datetime] = _now()


class PortalLink(Base):
    """A personal link to the debtor portal, sent by an agent: the token is stored hashed,
    used once, expires, and locks for a while after too many wrong answers."""

    __tablename__ = "portal_links"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_by: Mapped[int] = mapped_column(Integer, nullable=False)
    channel: Mapped[str] = mapped_column(String(10), nullable=False, server_default="email")
    sent_to: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_portal_links_debtor", "debtor_id"),)


class PortalSession(Base):
    """A debtor's portal session, opened by a link and its second factor: the cookie (or
    bearer) carries the random id, stored here hashed; it dies after 15 idle minutes."""

    __tablename__ = "portal_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("auth.portal_links.id"), nullable=False)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    language: Mapped[str] = mapped_column(String(5), nullable=False, server_default="es")
    created_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = _now()
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    address: Mapped[str | None] = mapped_column(INET)
