"""Tables of the activities service, all in its own ``activities`` schema.

``activities`` is append-only: a correction is a new row whose ``corrects_id`` points at
the entry it replaces. Each account's entries form a hash chain (``seq``, ``prev_hash``,
``hash``) whose head (last position and hash) lives in ``chain_heads``, so an edited,
deleted or truncated entry is detected. Promises, disputes and agenda items carry
state that changes; the productivity rollup is kept in the same transactions as the
changes it counts, and ``payments`` remembers each payment heard from the portfolio
service (the inbox of ``payment_received`` and the raw data the rollup is checked against).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index,
                        Integer, Numeric, String, Text, UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from recaudo_common.models import service_base

from .contracts import (AGENDA_KINDS, APPROVAL_KINDS, APPROVAL_STATES, APPROVERS, DESCRIPTION_MAX,
                        PORTAL_KIND,
                        DIRECTIONS, DISPUTE_OUTCOMES, KINDS)

Base = service_base("activities")
Money = Numeric(14, 2)

PROMISE_STATES = ("pending", "kept", "partly_kept", "broken")


def _now():
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class InstitutionSettings(Base):
    """Per institution: dispute SLA, payment attribution window and the zone its days are in."""

    __tablename__ = "institution_settings"
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    dispute_sla_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="10")
    attribution_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="30")
    time_zone: Mapped[str] = mapped_column(String(60), nullable=False,
                                           server_default="America/Mexico_City")
    #: the number its calls go out from (a policy's caller id rule needs one known)
    outbound_number: Mapped[str | None] = mapped_column(String(40))
    __table_args__ = (
        CheckConstraint("dispute_sla_days BETWEEN 1 AND 365", name="sla"),
        CheckConstraint("attribution_days BETWEEN 0 AND 365", name="attribution"),
    )


class ResultCode(Base):
    """A result of the institution's catalogue (an admin edits it; codes are never deleted)."""

    __tablename__ = "result_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    code: Mapped[str] = mapped_column(String(30), nullable=False)
    label: Mapped[str] = mapped_column(String(120), nullable=False)
    contact_made: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    needs_promise: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    invalidates_phone: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                    server_default=text("false"))
    schedules_callback: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                     server_default=text("false"))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    __table_args__ = (UniqueConstraint("institution_id", "code", name="uq_result_codes_code"),)


class Activity(Base):
    """One contact (or note) with a debtor, as logged. Never updated, never deleted."""

    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: who made the contact; ``logged_by`` wrote the entry (a supervisor's correction)
    agent_id: Mapped[int] = mapped_column(Integer, nullable=False)
    logged_by: Mapped[int] = mapped_column(Integer, nullable=False)
    queue_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    direction: Mapped[str] = mapped_column(String(10), nullable=False)
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_code_id: Mapped[int | None] = mapped_column(ForeignKey("activities.result_codes.id"))
    #: the code and its flags as they were when logged (the catalogue may change later)
    result_code: Mapped[str | None] = mapped_column(String(30))
    contact_made: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    #: what the entry committed to, as logged (promise terms, callback time): hashed with it
    details: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("activities.activities.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    __table_args__ = (
        UniqueConstraint("account_id", "seq", name="uq_activities_account_seq"),
        UniqueConstraint("logged_by", "idempotency_key", name="uq_activities_idempotency"),
        CheckConstraint(_in("kind", (*KINDS, PORTAL_KIND)), name="kind"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="times"),
        CheckConstraint(f"char_length(description) <= {DESCRIPTION_MAX}", name="description"),
        # one correction per entry: a later one corrects the correction
        Index("uq_activities_corrects", "corrects_id", unique=True,
              postgresql_where=text("corrects_id IS NOT NULL")),
        Index("ix_activities_account_started", "account_id", "started_at"),
        Index("ix_activities_agent_started", "agent_id", "started_at"),
    )


class ChainHead(Base):
    """The last link of an account's chain: its position and hash (what verify ends on)."""

    __tablename__ = "chain_heads"
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class Promise(Base):
    __tablename__ = "promises"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.activities.id"), nullable=False,
                                             unique=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    agent_id: Mapped[int] = mapped_column(Integer, nullable=False)
    queue_id: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    #: the last instalment's date (the whole promise is due then)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    paid_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    state: Mapped[str] = mapped_column(String(12), nullable=False, server_default="pending")
    #: the day (institution's zone) it was made, and the day it was kept or found broken
    made_on: Mapped[date] = mapped_column(Date, nullable=False)
    settled_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = _now()
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("amount > 0 AND paid_amount >= 0", name="amounts"),
        CheckConstraint(_in("state", PROMISE_STATES), name="state"),
        Index("ix_promises_account_state", "account_id", "state"),
        Index("ix_promises_pending_due", "due_date", postgresql_where=text("state = 'pending'")),
    )


class PromiseInstalment(Base):
    __tablename__ = "promise_instalments"
    promise_id: Mapped[int] = mapped_column(ForeignKey("activities.promises.id", ondelete="CASCADE"),
                                            primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    paid_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    __table_args__ = (CheckConstraint("amount > 0 AND paid_amount >= 0", name="amounts"),)


class Payment(Base):
    """A payment the portfolio service announced, once per movement, and who it is credited to."""

    __tablename__ = "payments"
    movement_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    value_date: Mapped[date] = mapped_column(Date, nullable=False)
    #: the agent (and queue) who last worked the account within the attribution window
    agent_id: Mapped[int | None] = mapped_column(Integer)
    queue_id: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_payments_account", "account_id"),)


class Dispute(Base):
    """An aclaración: the debtor contests the debt; the account is on hold while it is open."""

    __tablename__ = "disputes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    evidence: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    opened_by: Mapped[int] = mapped_column(Integer, nullable=False)
    owner_id: Mapped[int] = mapped_column(Integer, nullable=False)
    opened_at: Mapped[datetime] = _now()
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False, server_default="open")
    outcome: Mapped[str | None] = mapped_column(String(20))
    corrected_balance: Mapped[Decimal | None] = mapped_column(Money)
    resolution_note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    resolved_by: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: the document sent with it: a version in the documents service (downloads go there,
    #: through its checks), and its name to show
    document_version_id: Mapped[int | None] = mapped_column(BigInteger)
    document_name: Mapped[str | None] = mapped_column(String(255))
    __table_args__ = (
        CheckConstraint("state IN ('open', 'resolved')", name="state"),
        CheckConstraint(f"outcome IS NULL OR {_in('outcome', DISPUTE_OUTCOMES)}", name="outcome"),
        CheckConstraint("(state = 'open') = (outcome IS NULL)", name="resolved"),
        CheckConstraint("char_length(evidence) <= 20000", name="evidence"),
        # one open dispute per account: the hold in the queues is on or off
        Index("uq_disputes_open_account", "account_id", unique=True,
              postgresql_where=text("state = 'open'")),
        Index("ix_disputes_open_due", "institution_id", "due_date",
              postgresql_where=text("state = 'open'")),
    )


class AgendaItem(Base):
    """A callback or visit due at a time, for one agent or for a whole team."""

    __tablename__ = "agenda_items"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    agent_id: Mapped[int | None] = mapped_column(Integer)
    team_id: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(500), nullable=False, server_default="")
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.activities.id"))
    created_by: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _now()
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[int | None] = mapped_column(Integer)
    #: the client's ``Idempotency-Key``: a retry of the same scheduling answers this item
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    __table_args__ = (
        UniqueConstraint("created_by", "idempotency_key", name="uq_agenda_items_idempotency"),
        CheckConstraint(_in("kind", AGENDA_KINDS), name="kind"),
        CheckConstraint("(agent_id IS NULL) <> (team_id IS NULL)", name="owner"),
        Index("ix_agenda_items_agent_due", "agent_id", "due_at"),
        Index("ix_agenda_items_team_due", "team_id", "due_at"),
    )


class Team(Base):
    """Projection of auth's teams (``team_changed``): who a team's items and rollups cover."""

    __tablename__ = "teams"
    team_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    supervisor_id: Mapped[int] = mapped_column(Integer, nullable=False)


class TeamMember(Base):
    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(ForeignKey("activities.teams.team_id", ondelete="CASCADE"),
                                         primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    __table_args__ = (Index("ix_team_members_agent", "agent_id"),)


class IcsToken(Base):
    """An agent's private calendar-feed token, stored as its SHA-256 (shown once)."""

    __tablename__ = "ics_tokens"
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _now()


class Productivity(Base):
    """Daily rollup per agent, institution and queue (0: none known), kept with the changes."""

    __tablename__ = "productivity_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    queue_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    calls: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    visits: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    emails: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    faxes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    sms: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    letters: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    notes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    contacts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    promises_made: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    promised_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    promises_kept: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    kept_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    promises_broken: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    amount_recovered: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    __table_args__ = (Index("ix_productivity_daily_institution_day", "institution_id", "day"),)


class ContactPolicy(Base):
    """One version of a jurisdiction's contact policy (``contact_policy`` rules as data).
    Never updated: a compliance officer writes a new version with the date it takes effect;
    the one in force at a moment is the latest version effective by then."""

    __tablename__ = "contact_policies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(String(2), nullable=False)   # "*": the default
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    rules: Mapped[list] = mapped_column(JSONB, nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_by: Mapped[int | None] = mapped_column(Integer)   # None: seeded
    #: who wrote it, as they were called then (the history names them)
    created_by_name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()
    __table_args__ = (UniqueConstraint("jurisdiction", "version", name="uq_contact_policies_version"),)


class ComplianceEntry(Base):
    """The compliance log: every verdict that refused a contact or was overridden.
    Append-only (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "compliance_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    username: Mapped[str] = mapped_column(String(100), nullable=False)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    to: Mapped[str | None] = mapped_column(String(254))
    rule: Mapped[str] = mapped_column(String(40), nullable=False)
    policy_version: Mapped[str] = mapped_column(String(20), nullable=False)
    decision: Mapped[str] = mapped_column(String(10), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    justification: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint("decision IN ('refused', 'overridden')", name="decision"),
        Index("ix_compliance_log_debtor", "debtor_id", "at"),
        Index("ix_compliance_log_institution", "institution_id", "at"),
    )


class DebtorPreferences(Base):
    """What the debtor asked for about being contacted (what the policies read besides the
    contact's own facts): consent per channel, cease-communication, an attorney, times
    that do not suit them, their language."""

    __tablename__ = "debtor_preferences"
    debtor_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    #: channel -> {"given_at", "withdrawn_at", "source"}
    consent: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    cease_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: {"name", "contact"} when represented by an attorney
    attorney: Mapped[dict | None] = mapped_column(JSONB)
    #: [{"weekdays": [0..6] or null, "from": "HH:MM", "until": "HH:MM"}] in the debtor's zone
    inconvenient: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    language: Mapped[str | None] = mapped_column(String(5))
    updated_by: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _now()




class PlanLimits(Base):
    """Per institution, what a promise, plan or settlement may be without anyone's approval
    (limits.py): as data an administrator edits; permissive defaults until then."""

    __tablename__ = "plan_limits"
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    max_instalments: Mapped[int] = mapped_column(Integer, nullable=False, server_default="36")
    #: the first instalment is at least this amount and this share of the plan's total
    min_first_payment: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    min_first_payment_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False,
                                                           server_default="0")
    #: the last instalment falls at most this many days after the day it is promised
    max_plan_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1095")
    #: a settlement offer stands this many days
    offer_expiry_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="7")
    #: [{stage|null, dpd_from, dpd_to|null, thresholds: [{up_to_pct, approver|null}]}]
    discount_bands: Mapped[list] = mapped_column(JSONB, nullable=False,
                                                 server_default=text("'[]'::jsonb"))
    updated_by: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint("max_instalments BETWEEN 1 AND 120", name="instalments"),
        CheckConstraint("min_first_payment >= 0", name="first_payment"),
        CheckConstraint("min_first_payment_pct BETWEEN 0 AND 100", name="first_payment_pct"),
        CheckConstraint("max_plan_days BETWEEN 1 AND 3660", name="plan_days"),
        CheckConstraint("offer_expiry_days BETWEEN 1 AND 365", name="offer_expiry"),
    )


class Approval(Base):
    """A promise, plan or settlement outside its institution's limits, waiting for (or
    decided by) the approver the limits name. An approved promise is made then."""

    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    #: the terms asked for (strings, as the entry records them)
    terms: Mapped[dict] = mapped_column(JSONB, nullable=False)
    #: why it is outside the limits: [{field, message}]
    reasons: Mapped[list] = mapped_column(JSONB, nullable=False)
    approver: Mapped[str] = mapped_column(String(20), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False, server_default="pending")
    #: "agent" (the activity form) or "portal" (the debtor alone)
    channel: Mapped[str] = mapped_column(String(10), nullable=False, server_default="agent")
    requested_by: Mapped[int] = mapped_column(Integer, nullable=False)
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.activities.id"))
    promise_id: Mapped[int | None] = mapped_column(ForeignKey("activities.promises.id"))
    decided_by: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint(_in("state", APPROVAL_STATES), name="state"),
        CheckConstraint(_in("kind", APPROVAL_KINDS), name="kind"),
        CheckConstraint(_in("approver", APPROVERS), name="approver"),
        Index("ix_approvals_pending", "institution_id", "created_at",
              postgresql_where=text("state = 'pending'")),
        Index("ix_approvals_account", "account_id"),
    )
