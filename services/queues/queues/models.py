"""Tables of the queues service, all in its own ``queues`` schema.

``account_facts`` is this service's projection of what it ranks on, fed by events
from the portfolio and activities services. A strategy is an ordered list of queues
per institution; ``assignments`` says, for every account, the queue it landed in,
its rank there and its collector; ``leases`` holds the accounts being worked right
now, one row per account at most (the primary key makes a double lease impossible).
"""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index,
                        Integer, Numeric, String, Time, UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from recaudo_common.models import service_base

Base = service_base("queues")
Money = Numeric(14, 2)


def _now():
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class AccountFacts(Base):
    __tablename__ = "account_facts"
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stage: Mapped[str] = mapped_column(String(12), nullable=False)
    status_id: Mapped[int | None] = mapped_column(Integer)
    days_past_due: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    balance: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    overdue_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    product: Mapped[str] = mapped_column(String(60), nullable=False, server_default="")
    state: Mapped[str | None] = mapped_column(String(60))
    time_zone: Mapped[str | None] = mapped_column(String(60))
    next_due_date: Mapped[date | None] = mapped_column(Date)
    last_contact_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_result_code: Mapped[str | None] = mapped_column(String(30))
    open_promise: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    broken_promise: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                 server_default=text("false"))
    open_dispute: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    do_not_contact: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                 server_default=text("false"))
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: until when the contact policy refuses calling the debt whatever the hour (cease,
    #: attorney, call frequency: activities' ``contact_hold_changed``)
    contact_hold_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_account_facts_institution", "institution_id"),)


class InstitutionRules(Base):
    """Per institution: the contact window (local time of the debtor) and its zone."""

    __tablename__ = "institution_rules"
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time_zone: Mapped[str] = mapped_column(String(60), nullable=False,
                                           server_default="America/Mexico_City")
    contact_from: Mapped[time] = mapped_column(Time, nullable=False, server_default=text("'07:00'"))
    contact_until: Mapped[time] = mapped_column(Time, nullable=False, server_default=text("'22:00'"))


class Strategy(Base):
    __tablename__ = "strategies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    #: draft (editable), active (the one applied), archived
    state: Mapped[str] = mapped_column(String(10), nullable=False, server_default="draft")
    #: champion/challenger: this share (0-50 %) of accounts, stable per account, goes to the
    #: challenger strategy instead
    challenger_id: Mapped[int | None] = mapped_column(ForeignKey("queues.strategies.id"))
    challenger_share: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_by: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _now()
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("institution_id", "name", name="uq_strategies_name"),
        CheckConstraint("state IN ('draft', 'active', 'archived')", name="state"),
        CheckConstraint("challenger_share BETWEEN 0 AND 50", name="share"),
        Index("uq_strategies_one_active", "institution_id", unique=True,
              postgresql_where=text("state = 'active'")),
    )


class Queue(Base):
    """A fila de cobranza: conditions, order, owner team and assignment policy."""

    __tablename__ = "queues"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("queues.strategies.id", ondelete="CASCADE"),
                                             nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    #: {"all"|"any": [{"field", "op", "value"} | nested group]}
    conditions: Mapped[dict] = mapped_column(JSONB, nullable=False)
    #: [{"field", "direction": "asc"|"desc"}]
    sort: Mapped[list] = mapped_column(JSONB, nullable=False)
    team_id: Mapped[int] = mapped_column(Integer, nullable=False)
    policy: Mapped[str] = mapped_column(String(16), nullable=False, server_default="round_robin")
    frozen: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    __table_args__ = (
        UniqueConstraint("strategy_id", "position", name="uq_queues_position"),
        CheckConstraint("policy IN ('round_robin', 'balance_weighted', 'capacity', 'manual')",
                        name="policy"),
    )


class Assignment(Base):
    __tablename__ = "assignments"
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.queues.id", ondelete="CASCADE"),
                                          nullable=False)
    arm: Mapped[str] = mapped_column(String(10), nullable=False, server_default="champion")
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    agent_id: Mapped[int | None] = mapped_column(Integer)
    assigned_at: Mapped[datetime] = _now()
    #: not to be handed out before this (worked today, a callback, a dispute: working.py)
    resting_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        Index("ix_assignments_queue_rank", "queue_id", "rank"),
        #: every "accounts of agent X" (worklists, reassignments)
        Index("ix_assignments_agent_queue_rank", "agent_id", "queue_id", "rank"),
        #: the next-account pull walks one collector's (or nobody's) ready accounts of a
        #: queue in rank order and stops at the first free ones
        Index("ix_assignments_ready", "agent_id", "queue_id", "rank",
              postgresql_where=text("resting_until IS NULL")),
        #: the timer that wakes rested accounts
        Index("ix_assignments_resting_until", "resting_until",
              postgresql_where=text("resting_until IS NOT NULL")),
        Index("ix_assignments_institution", "institution_id"),
    )


class Lease(Base):
    """An account being worked. One row per account: the primary key is the guarantee."""

    __tablename__ = "leases"
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    agent_id: Mapped[int] = mapped_column(Integer, nullable=False)
    leased_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    __table_args__ = (Index("ix_leases_agent", "agent_id"),)


class TeamMember(Base):
    """Projection of auth's teams: who works which team's queues, and their capacity."""

    __tablename__ = "team_members"
    team_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False, server_default="100")


class WorkLog(Base):
    """Accounts pulled and worked per agent and day, for the supervisors' board."""

    __tablename__ = "work_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    queue_id: Mapped[int | None] = mapped_column(Integer)
    agent_id: Mapped[int] = mapped_column(Integer, nullable=False)
    event: Mapped[str] = mapped_column(String(10), nullable=False)  # pulled | worked | released
    at: Mapped[datetime] = _now()
    __table_args__ = (Index("ix_work_log_queue_at", "queue_id", "at"),)


class RecoveryDaily(Base):
    """Payments heard from the portfolio (``payment_received``) per value day, institution,
    queue (0: none) and strategy arm ('none': unassigned) the account was in when paid."""

    __tablename__ = "recovery_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    queue_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    arm: Mapped[str] = mapped_column(String(10), primary_key=True)
    payments: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    collected: Mapped[Decimal] = mapped_column(Numeric(16, 2), nullable=False, server_default="0")
    __table_args__ = (Index("ix_recovery_daily_institution_day", "institution_id", "day"),)


class AssignedDaily(Base):
    """What each queue and arm held on a day (accounts and their balance): the "assigned"
    that recovery is measured against, snapshotted daily and after each rebuild."""

    __tablename__ = "assigned_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    queue_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    arm: Mapped[str] = mapped_column(String(10), primary_key=True)
    accounts: Mapped[int] = mapped_column(Integer, nullable=False)
    balance: Mapped[Decimal] = mapped_column(Numeric(16, 2), nullable=False)
    __table_args__ = (Index("ix_assigned_daily_institution_day", "institution_id", "day"),)


# --- preventive campaigns (campaigns.py) -------------------------------------------------------

CAMPAIGN_CHANNELS = ("email", "letter")
CAMPAIGN_STATES = ("active", "paused")
TARGET_STATES = ("pending", "sent", "refused", "failed", "held_out")


class Campaign(Base):
    """A preventive campaign: the accounts its conditions (the queues' rule engine over the
    facts) pick each day at ``send_hour`` in the institution's zone are sent a message from
    ``template_id`` (messaging) on ``channel`` (email, SMS or letter), except a hold-out share that gets nothing."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    #: a condition tree of rules.py, like a queue's
    conditions: Mapped[dict] = mapped_column(JSONB, nullable=False)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    template_id: Mapped[int] = mapped_column(Integer, nullable=False)
    language: Mapped[str] = mapped_column(String(2), nullable=False, server_default="es")
    send_hour: Mapped[int] = mapped_column(Integer, nullable=False, server_default="9")
    #: this share (0-50 %) of the accounts picked, stable per account, is sent nothing
    holdout_share: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    #: each message carries the debtor's personal portal link (email or SMS; messaging
    #: has auth make it, one per run and debtor)
    portal_link: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    state: Mapped[str] = mapped_column(String(10), nullable=False, server_default="active")
    created_by: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (
        UniqueConstraint("institution_id", "name", name="uq_campaigns_name"),
        CheckConstraint("channel IN ('email', 'sms', 'letter')", name="channel"),
        CheckConstraint("NOT (portal_link AND channel = 'letter')", name="portal_link"),
        CheckConstraint("state IN ('active', 'paused')", name="state"),
        CheckConstraint("send_hour BETWEEN 0 AND 23", name="send_hour"),
        CheckConstraint("holdout_share BETWEEN 0 AND 50", name="holdout_share"),
    )


class CampaignRun(Base):
    """One pick of a campaign's accounts. A scheduled run is unique per campaign and local
    day: the instance whose INSERT wins does the day's work, the others find it done."""

    __tablename__ = "campaign_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("queues.campaigns.id", ondelete="CASCADE"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)   # scheduled | manual
    started_at: Mapped[datetime] = _now()
    targeted: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    held_out: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_by: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (
        CheckConstraint("kind IN ('scheduled', 'manual')", name="kind"),
        Index("uq_campaign_runs_scheduled_day", "campaign_id", "day", unique=True,
              postgresql_where=text("kind = 'scheduled'")),
    )


class CampaignTarget(Base):
    """An account a run picked, once per campaign and due date (or day, for an account
    without one): whether it was held out, sent (the message) or refused and why, and
    whether it paid by its due date (from ``payment_received``)."""

    __tablename__ = "campaign_targets"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("queues.campaigns.id", ondelete="CASCADE"), nullable=False)
    run_id: Mapped[int] = mapped_column(ForeignKey("queues.campaign_runs.id", ondelete="CASCADE"),
                                        nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    due_date: Mapped[date | None] = mapped_column(Date)
    #: the due date, or the run's day when the account has none: one message per cycle
    cycle_date: Mapped[date] = mapped_column(Date, nullable=False)
    balance: Mapped[Decimal] = mapped_column(Money, nullable=False)
    holdout: Mapped[bool] = mapped_column(Boolean, nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    refusal_cause: Mapped[str | None] = mapped_column(String(30))
    refusal_reason: Mapped[str | None] = mapped_column(String(300))
    message_uuid: Mapped[str | None] = mapped_column(String(36))
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_on: Mapped[date | None] = mapped_column(Date)
    paid_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    __table_args__ = (
        UniqueConstraint("campaign_id", "account_id", "cycle_date", name="uq_campaign_targets_cycle"),
        CheckConstraint("state IN ('pending', 'sent', 'refused', 'failed', 'held_out')",
                        name="state"),
        Index("ix_campaign_targets_pending", "id", postgresql_where=text("state = 'pending'")),
        Index("ix_campaign_targets_account", "account_id"),
        Index("ix_campaign_targets_run", "run_id"),
        Index("ix_campaign_targets_message", "message_uuid"),
    )


class CampaignMessage(Base):
    """Delivery outcomes of campaign messages, heard from messaging's ``message_sent`` /
    ``message_failed`` (kept apart from the targets: an event may arrive before the
    target learns its message's id)."""

    __tablename__ = "campaign_messages"
    message_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer, nullable=False)
    delivered: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(300))
    at: Mapped[datetime] = _now()
