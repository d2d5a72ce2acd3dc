"""Tables of the messaging service, all in its own ``messaging`` schema.

Mailboxes keep their sync position (UIDVALIDITY and the last UID seen) next to their
settings, so a restart resumes where the last committed batch ended. Inbound messages
are unique per mailbox by Message-ID (a UIDVALIDITY change re-reads the folder without
duplicating) and by (UIDVALIDITY, UID). Outbound messages are the queue the delivery
timer drains: a row is accepted (``queued``) in the same transaction as its event, so
nothing accepted is lost, and its state only moves forward.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer,
                        LargeBinary, String, Text, UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from recaudo_common.models import service_base

from .contracts import (DELIVERY_STATES, INBOUND_STATES, OUTBOUND_STATES, PARTNER_EVENTS,
                        PATTERN_TARGETS, SMTP_SECURITY)

Base = service_base("messaging")

#: a letter is rendered to PDF and filed as a document for the post (no mailbox sends it)
CHANNELS = ("email", "fax", "letter")
MATCHED_BY = ("sender", "pattern", "reply", "manual", "bounce")


def _now():
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Mailbox(Base):
    """An IMAP account synced into the platform and the SMTP account that sends as it."""

    __tablename__ = "mailboxes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    team_id: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    address: Mapped[str] = mapped_column(String(254), nullable=False)
    imap_host: Mapped[str] = mapped_column(String(255), nullable=False)
    imap_port: Mapped[int] = mapped_column(Integer, nullable=False)
    imap_tls: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    imap_user: Mapped[str] = mapped_column(String(254), nullable=False)
    #: Fernet token (see crypto.py); never dumped
    imap_password: Mapped[str] = mapped_column(Text, nullable=False)
    imap_folder: Mapped[str] = mapped_column(String(200), nullable=False, server_default="INBOX")
    smtp_host: Mapped[str] = mapped_column(String(255), nullable=False)
    smtp_port: Mapped[int] = mapped_column(Integer, nullable=False)
    smtp_security: Mapped[str] = mapped_column(String(10), nullable=False, server_default="starttls")
    smtp_user: Mapped[str | None] = mapped_column(String(254))
    smtp_password: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    idle_supported: Mapped[bool | None] = mapped_column(Boolean)
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint(_in("smtp_security", SMTP_SECURITY), name="smtp_security"),
        CheckConstraint("imap_port BETWEEN 1 AND 65535 AND smtp_port BETWEEN 1 AND 65535",
                        name="ports"),
        UniqueConstraint("institution_id", "name", name="uq_mailboxes_name"),
    )


class InstitutionSettings(Base):
    """Per-institution messaging settings: the email-to-fax gateway's domain."""

    __tablename__ = "institution_settings"
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    fax_domain: Mapped[str | None] = mapped_column(String(253))
    default_mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("messaging.mailboxes.id"))


class MatchPattern(Base):
    """A regular expression an admin defines to find an account or customer number in the
    subject and body of inbound mail (group 1, or the whole match, is the number)."""

    __tablename__ = "match_patterns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    regex: Mapped[str] = mapped_column(String(300), nullable=False)
    target: Mapped[str] = mapped_column(String(20), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    __table_args__ = (CheckConstraint(_in("target", PATTERN_TARGETS), name="target"),)


class Template(Base):
    """A letter in Spanish (required) and English (optional), as subject, text and HTML
    Jinja sources rendered in a sandbox over the debtor's and account's fields only."""

    __tablename__ = "templates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    subject_es: Mapped[str] = mapped_column(String(300), nullable=False)
    text_es: Mapped[str] = mapped_column(Text, nullable=False)
    html_es: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    subject_en: Mapped[str] = mapped_column(String(300), nullable=False, server_default="")
    text_en: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    html_en: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (UniqueConstraint("institution_id", "name", name="uq_templates_name"),)


class OutboundMessage(Base):
    """An email or fax to a debtor: what was sent, to whom, and how delivery went."""

    __tablename__ = "outbound_messages"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: the public id, also sent as the X-Recaudo-Message-Id header and in the Message-ID
    uuid: Mapped[str] = mapped_column(UUID(as_uuid=False), nullable=False, unique=True)
    message_id: Mapped[str] = mapped_column(String(300), nullable=False, unique=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: the sending mailbox (none for a letter)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("messaging.mailboxes.id"))
    channel: Mapped[str] = mapped_column(String(6), nullable=False)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("messaging.templates.id"))
    language: Mapped[str] = mapped_column(String(2), nullable=False, server_default="es")
    to_address: Mapped[str] = mapped_column(String(254), nullable=False)
    fax_number: Mapped[str | None] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    #: [{"version_id", "name"}] from the documents service (a fax: its PDF letter)
    attachments: Mapped[list] = mapped_column(JSONB, nullable=False,
                                              server_default=text("'[]'::jsonb"))
    #: the fax letter itself until it is stored as a document (then cleared)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(8), nullable=False, server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = _now()
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_response: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[int] = mapped_column(Integer, nullable=False)
    override_justification: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    #: the preventive campaign (queues service) it was sent for; carried by its events
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint("mailbox_id IS NOT NULL OR channel = 'letter'", name="mailbox"),
        CheckConstraint(_in("state", OUTBOUND_STATES), name="state"),
        UniqueConstraint("created_by", "idempotency_key", name="uq_outbound_idempotency"),
        Index("ix_outbound_due", "next_attempt_at", postgresql_where=text("state = 'queued'")),
        Index("ix_outbound_debtor", "debtor_id", "created_at"),
    )


class InboundMessage(Base):
    """A message synced from a mailbox, matched to a debtor's account or waiting in triage."""

    __tablename__ = "inbound_messages"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("messaging.mailboxes.id"), nullable=False)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    message_id: Mapped[str] = mapped_column(String(300), nullable=False)
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    from_address: Mapped[str] = mapped_column(String(254), nullable=False, server_default="")
    from_name: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    subject: Mapped[str] = mapped_column(String(300), nullable=False, server_default="")
    body_text: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    size: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    #: [{"name", "content_type", "size", "document_id", "version_id", "error"}]
    attachments: Mapped[list] = mapped_column(JSONB, nullable=False,
                                              server_default=text("'[]'::jsonb"))
    #: the raw message while its attachments still wait to become documents (triage)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    problem: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    matched_by: Mapped[str | None] = mapped_column(String(10))
    debtor_id: Mapped[int | None] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("messaging.outbound_messages.id"))
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    assigned_by: Mapped[int | None] = mapped_column(Integer)
    synced_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint(_in("state", INBOUND_STATES), name="state"),
        UniqueConstraint("mailbox_id", "message_id", name="uq_inbound_message_id"),
        UniqueConstraint("mailbox_id", "uidvalidity", "uid", name="uq_inbound_uid"),
        Index("ix_inbound_triage", "institution_id", "synced_at",
              postgresql_where=text("state = 'unmatched'")),
        Index("ix_inbound_pending_activity", "id",
              postgresql_where=text("account_id IS NOT NULL AND activity_id IS NULL")),
        Index("ix_inbound_debtor", "debtor_id"),
    )


SMS_DIRECTIONS = ("outbound", "inbound")
#: an outbound SMS: queued -> sent (Kannel accepted it) -> delivered | failed (its DLR);
#: an inbound one is ``received``
SMS_STATES = ("queued", "sent", "delivered", "failed", "received")


class SmsSettings(Base):
    """An institution's SMS gateway (Kannel's HTTP ``sendsms`` or any gateway speaking it):
    where to send, as whom, and the token its MO callback must carry."""

    __tablename__ = "sms_settings"
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    gateway_url: Mapped[str] = mapped_column(String(300), nullable=False)
    username: Mapped[str] = mapped_column(String(120), nullable=False)
    #: Fernet tokens (see crypto.py); never dumped
    password: Mapped[str] = mapped_column(Text, nullable=False)
    inbound_token: Mapped[str] = mapped_column(Text, nullable=False)
    #: the number or name messages are sent from; inbound messages to it are the institution's
    sender_id: Mapped[str] = mapped_column(String(20), nullable=False, unique=True)
    #: words that, alone in an inbound message, withdraw SMS consent (comma-separated)
    opt_out_words: Mapped[str] = mapped_column(String(300), nullable=False,
                                               server_default="BAJA,STOP")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))


class SmsMessage(Base):
    """One SMS to or from a debtor's phone: the conversation on the debtor's SMS tab."""

    __tablename__ = "sms_messages"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: the public id, also in the dlr-url Kannel calls back with
    uuid: Mapped[str] = mapped_column(UUID(as_uuid=False), nullable=False, unique=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int | None] = mapped_column(BigInteger)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)   # digits only
    body: Mapped[str] = mapped_column(Text, nullable=False)
    encoding: Mapped[str] = mapped_column(String(5), nullable=False, server_default="gsm7")
    segments: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("messaging.templates.id"))
    language: Mapped[str] = mapped_column(String(2), nullable=False, server_default="es")
    state: Mapped[str] = mapped_column(String(9), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = _now()
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Kannel's id of an inbound message (it may call get-url twice)
    gateway_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    #: the preventive campaign (queues) it was sent for: its delivery report counts there
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(Integer)
    override_justification: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint(_in("direction", SMS_DIRECTIONS), name="direction"),
        CheckConstraint(_in("state", SMS_STATES), name="state"),
        CheckConstraint("encoding IN ('gsm7', 'ucs2')", name="encoding"),
        UniqueConstraint("created_by", "idempotency_key", name="uq_sms_idempotency"),
        Index("ix_sms_due", "next_attempt_at", postgresql_where=text("state = 'queued'")),
        Index("ix_sms_debtor", "debtor_id", "created_at"),
    )


# --- partners' webhooks (partner_hooks.py) ---------------------------------------------------



class WebhookSubscription(Base):
    """An institution's integration user's HTTPS endpoint and the events it wants; its
    signing secret is sealed (shown once, when made). Paused when it keeps failing."""

    __tablename__ = "webhook_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    owner_id: Mapped[int] = mapped_column(Integer, nullable=False)
    #: who is told when the subscription is paused
    contact_email: Mapped[str] = mapped_column(String(254), nullable=False)
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    events: Mapped[list] = mapped_column(JSONB, nullable=False)
    secret_sealed: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_reason: Mapped[str] = mapped_column(String(300), nullable=False, server_default="")
    #: failed attempts in a row (any delivery); reaching the limit pauses the subscription
    failures_in_row: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 server_default=func.now())


class WebhookDelivery(Base):
    """One event for one subscription: delivered in order per (subscription, account), by
    when it happened - the next waits until this one is delivered or given up - retried with
    backoff for 24 h."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("messaging.webhook_subscriptions.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False), nullable=False)
    event_type: Mapped[str] = mapped_column(String(40), nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                      server_default=func.now())
    #: an instance delivering it holds it until then (a crashed one's lease runs out)
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(300), nullable=False, server_default="")
    last_latency_ms: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
        Index("ix_webhook_deliveries_due", "next_attempt_at",
              postgresql_where=text("state = 'pending'")),
        Index("ix_webhook_deliveries_chain", "subscription_id", "account_id", "occurred_at", "id",
              postgresql_where=text("state = 'pending'")),
        Index("ix_webhook_deliveries_log", "subscription_id", "id"),
    )


class WebhookAttempt(Base):
    """The delivery log: each attempt's answer (status code or error) and latency."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("messaging.webhook_deliveries.id", ondelete="CASCADE"), nullable=False,
        index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                   server_default=func.now())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(300), nullable=False, server_default="")
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
