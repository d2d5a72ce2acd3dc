"""Tables of the portfolio service, all in its own ``portfolio`` schema.

Amounts are exact decimals (``NUMERIC(14, 2)``), never floats. Debtors are unique
by (institution, customer number) and accounts by (institution, account number):
imports upsert on those keys, so a re-import updates instead of duplicating.
"""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index,
                        Integer, Numeric, String, Text, Time, UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from recaudo_common.models import service_base

Base = service_base("portfolio")

Money = Numeric(14, 2)


def _created():
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Institution(Base):
    """A creditor (bank, lender) whose portfolio is collected."""

    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(60), nullable=False,
                                           server_default="America/Mexico_City")
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="MXN")
    jurisdiction: Mapped[str] = mapped_column(String(2), nullable=False, server_default="MX")
    #: the window in which debtors may be contacted, in the debtor's local time
    contact_from: Mapped[time] = mapped_column(Time, nullable=False, server_default=text("'07:00'"))
    contact_until: Mapped[time] = mapped_column(Time, nullable=False, server_default=text("'22:00'"))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = _created()


class Status(Base):
    """A per-institution status of an account (the main filter of lists and reports)."""

    __tablename__ = "statuses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("portfolio.institutions.id"),
                                                nullable=False)
    code: Mapped[str] = mapped_column(String(30), nullable=False)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    __table_args__ = (UniqueConstraint("institution_id", "code", name="uq_statuses_institution_code"),)


class Debtor(Base):
    __tablename__ = "debtors"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("portfolio.institutions.id"),
                                                nullable=False)
    customer_number: Mapped[str] = mapped_column(String(40), nullable=False)
    kind: Mapped[str] = mapped_column(String(10), nullable=False, server_default="person")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    tax_id: Mapped[str | None] = mapped_column(String(20))        # RFC
    national_id: Mapped[str | None] = mapped_column(String(20))   # CURP
    birth_date: Mapped[date | None] = mapped_column(Date)
    time_zone: Mapped[str | None] = mapped_column(String(60))
    notes: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("institution_id", "customer_number", name="uq_debtors_customer"),
        CheckConstraint("kind IN ('person', 'company')", name="kind"),
        Index("ix_debtors_customer_number", "customer_number"),
        Index("ix_debtors_tax_id", "tax_id"),
    )


class Phone(Base):
    __tablename__ = "phones"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("portfolio.debtors.id", ondelete="CASCADE"),
                                           nullable=False)  # led by its unique index
    number: Mapped[str] = mapped_column(String(20), nullable=False)  # digits only
    kind: Mapped[str] = mapped_column(String(12), nullable=False, server_default="mobile")
    priority: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    do_not_call: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    valid: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    __table_args__ = (
        UniqueConstraint("debtor_id", "number", name="uq_phones_debtor_number"),
        Index("ix_phones_number", "number", postgresql_ops={"number": "text_pattern_ops"}),
    )


# search as people type (search.py): names by trigrams without case or accents
# (``portfolio.search_text``: an immutable ``unaccent``, created by the migration), phones
# also by their end (a local number typed without its area code)
Index("ix_debtors_name_search", func.portfolio.search_text(Debtor.name).label("name_search"),
      postgresql_using="gin", postgresql_ops={"name_search": "gin_trgm_ops"})
Index("ix_phones_number_reversed", func.reverse(Phone.number).label("number_reversed"),
      postgresql_ops={"number_reversed": "text_pattern_ops"})


class Email(Base):
    __tablename__ = "emails"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("portfolio.debtors.id", ondelete="CASCADE"),
                                           nullable=False)  # led by its unique index
    address: Mapped[str] = mapped_column(String(254), nullable=False)  # lower-cased
    kind: Mapped[str] = mapped_column(String(12), nullable=False, server_default="personal")
    do_not_contact: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                 server_default=text("false"))
    __table_args__ = (
        UniqueConstraint("debtor_id", "address", name="uq_emails_debtor_address"),
        Index("ix_emails_address", "address", postgresql_ops={"address": "text_pattern_ops"}),
    )


class Address(Base):
    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("portfolio.debtors.id", ondelete="CASCADE"),
                                           nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(12), nullable=False, server_default="home")
    street: Mapped[str] = mapped_column(String(200), nullable=False)
    neighborhood: Mapped[str | None] = mapped_column(String(120))   # colonia
    municipality: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str | None] = mapped_column(String(60))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(2), nullable=False, server_default="MX")
    time_zone: Mapped[str | None] = mapped_column(String(60))
    #: no letters or visits here (the contact policy refuses a letter to it)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                 server_default=text("false"))


#: the kinds of contact a do-not-contact flag is kept on, and each one's flag
DO_NOT_CONTACT_FLAGS = {"phone": "do_not_call", "email": "do_not_contact",
                        "address": "do_not_contact"}


class DoNotContactChange(Base):
    """A phone, e-mail or address marked do-not-contact or released again: who, when and
    why (the debtor's contact tab shows them). The flag itself is on the contact; this is
    its history, kept after the contact is gone (``contact`` says what it was)."""

    __tablename__ = "do_not_contact_changes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("portfolio.debtors.id", ondelete="CASCADE"),
                                           nullable=False, index=True)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    contact_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    contact: Mapped[str] = mapped_column(String(300), nullable=False)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    #: the user (None: an import with no user behind it)
    changed_by: Mapped[int | None] = mapped_column(Integer)
    changed_by_name: Mapped[str] = mapped_column(String(80), nullable=False)
    changed_at: Mapped[datetime] = _created()
    __table_args__ = (
        CheckConstraint("channel IN ('phone', 'email', 'address')", name="channel"),
    )


class Guarantor(Base):
    """An aval: backs a debtor's accounts, kept apart from the debtor."""

    __tablename__ = "guarantors"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("portfolio.debtors.id", ondelete="CASCADE"),
                                           nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    tax_id: Mapped[str | None] = mapped_column(String(20))
    relationship: Mapped[str | None] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(String(300))


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("portfolio.institutions.id"),
                                                nullable=False)
    debtor_id: Mapped[int] = mapped_column(ForeignKey("portfolio.debtors.id"), nullable=False,
                                           index=True)
    account_number: Mapped[str] = mapped_column(String(40), nullable=False)
    product: Mapped[str] = mapped_column(String(60), nullable=False, server_default="")
    currency: Mapped[str] = mapped_column(String(3), nullable=False, server_default="MXN")
    original_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    balance: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    overdue_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    #: days since the oldest unpaid instalment fell due (kept by a set-based refresh)
    days_past_due: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    stage: Mapped[str] = mapped_column(String(12), nullable=False, server_default="current")
    status_id: Mapped[int | None] = mapped_column(ForeignKey("portfolio.statuses.id"))
    #: projection of the queues service's assignment (the collector working it)
    assigned_agent_id: Mapped[int | None] = mapped_column(Integer)
    lawyer_id: Mapped[int | None] = mapped_column(Integer)
    opened_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("institution_id", "account_number", name="uq_accounts_number"),
        CheckConstraint("stage IN ('current', 'delinquent', 'litigation')", name="stage"),
        CheckConstraint("balance >= 0 AND overdue_amount >= 0", name="amounts"),
        Index("ix_accounts_account_number", "account_number"),
        Index("ix_accounts_institution_stage_dpd", "institution_id", "stage", "days_past_due"),
        # "Ver cartera" across institutions: page 1 of the default sort (most days past due)
        # and of the sort by balance is a walk of one of these, not a sort of every account
        Index("ix_accounts_days_past_due", "days_past_due"),
        Index("ix_accounts_balance", "balance"),
        Index("ix_accounts_assigned_agent_id", "assigned_agent_id"),
        Index("ix_accounts_lawyer_id", "lawyer_id"),
    )


class CallbackHolder(Base):
    """Projection of the activities service's pending callbacks held by one agent: a
    callback on your agenda (delegated to you, say) opens its account to you until it is
    done, whoever the account is assigned to (``scope.account_clause``)."""

    __tablename__ = "callback_holders"
    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: None: a team's callback, or one done (it opens nothing)
    agent_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: the event's ``occurred_at``: an older event never overwrites a newer one
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    done: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))


class Instalment(Base):
    __tablename__ = "instalments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("portfolio.accounts.id", ondelete="CASCADE"),
                                            nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    due_date: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    paid_amount: Mapped[Decimal] = mapped_column(Money, nullable=False, server_default="0")
    __table_args__ = (
        UniqueConstraint("account_id", "number", name="uq_instalments_account_number"),
        Index("ix_instalments_unpaid", "account_id", "due_date",
              postgresql_where=text("paid_amount < amount")),
    )


class Movement(Base):
    """A charge, payment or adjustment; payments reduce the balance."""

    __tablename__ = "movements"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("portfolio.accounts.id", ondelete="CASCADE"),
                                            nullable=False)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    value_date: Mapped[date] = mapped_column(Date, nullable=False)
    reference: Mapped[str] = mapped_column(String(60), nullable=False)
    import_job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "reference", name="uq_movements_reference"),
        CheckConstraint("kind IN ('charge', 'payment', 'adjustment')", name="kind"),
        Index("ix_movements_account_value_date", "account_id", "value_date"),
    )


class AgingSnapshot(Base):
    """One row per account per day: the history behind trends and roll rates."""

    __tablename__ = "aging_snapshots"
    snapshot_date: Mapped[date] = mapped_column(Date, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    balance: Mapped[Decimal] = mapped_column(Money, nullable=False)
    overdue_amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    days_past_due: Mapped[int] = mapped_column(Integer, nullable=False)
    stage: Mapped[str] = mapped_column(String(12), nullable=False)
    status_id: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (Index("ix_aging_snapshots_institution_date", "institution_id",
                            "snapshot_date"),)


class AgingDaily(Base):
    """Rollup of ``aging_snapshots``: one row per day, institution, stage, status (0: none)
    and days-past-due bucket (``recaudo_common.reporting.BUCKETS``), rebuilt set-based with
    each snapshot, so the aging report reads a few dozen rows instead of every account."""

    __tablename__ = "aging_daily"
    snapshot_date: Mapped[date] = mapped_column(Date, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stage: Mapped[str] = mapped_column(String(12), primary_key=True)
    status_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    accounts: Mapped[int] = mapped_column(Integer, nullable=False)
    balance: Mapped[Decimal] = mapped_column(Numeric(16, 2), nullable=False)
    overdue_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2), nullable=False)
    __table_args__ = (Index("ix_aging_daily_institution_date", "institution_id",
                            "snapshot_date"),)


class AgingRoll(Base):
    """Roll rates: accounts by the bucket they were in at the previous month's last
    snapshot and the bucket they are in at this month's last (so far), per institution."""

    __tablename__ = "aging_rolls"
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    from_bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    to_bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    accounts: Mapped[int] = mapped_column(Integer, nullable=False)
    balance: Mapped[Decimal] = mapped_column(Numeric(16, 2), nullable=False)
    #: the two snapshots compared
    from_date: Mapped[date] = mapped_column(Date, nullable=False)
    to_date: Mapped[date] = mapped_column(Date, nullable=False)


class ImportLayout(Base):
    """How one institution's file maps onto Recaudo's fields, edited by an admin."""

    __tablename__ = "import_layouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("portfolio.institutions.id"),
                                                nullable=False)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)  # portfolio | payments
    file_format: Mapped[str] = mapped_column(String(5), nullable=False, server_default="csv")
    encoding: Mapped[str] = mapped_column(String(20), nullable=False, server_default="utf-8")
    delimiter: Mapped[str] = mapped_column(String(1), nullable=False, server_default=",")
    date_format: Mapped[str] = mapped_column(String(20), nullable=False, server_default="%Y-%m-%d")
    decimal_separator: Mapped[str] = mapped_column(String(1), nullable=False, server_default=".")
    thousands_separator: Mapped[str] = mapped_column(String(1), nullable=False, server_default="")
    #: Recaudo field -> the file's column header
    columns: Mapped[dict] = mapped_column(JSONB, nullable=False)
    #: Recaudo fields a row must have
    required: Mapped[list] = mapped_column(JSONB, nullable=False, server_default="[]")
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("institution_id", "name", name="uq_import_layouts_name"),
        CheckConstraint("kind IN ('portfolio', 'payments')", name="kind"),
        CheckConstraint("file_format IN ('csv', 'xlsx')", name="file_format"),
    )


class ImportJob(Base):
    __tablename__ = "import_jobs"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("portfolio.institutions.id"),
                                                nullable=False)
    layout_id: Mapped[int] = mapped_column(ForeignKey("portfolio.import_layouts.id"),
                                           nullable=False)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    #: where the uploaded file waits (object key in S3) until the service reads it
    source: Mapped[str] = mapped_column(String(300), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    state: Mapped[str] = mapped_column(String(10), nullable=False, server_default="queued")
    total_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    processed_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    imported_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    rejected_rows: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_by: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),
        Index("ix_import_jobs_institution_created", "institution_id", "created_at"),
    )


class ImportProblem(Base):
    """One line of an import's validation report: row, column, problem."""

    __tablename__ = "import_problems"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("portfolio.import_jobs.id", ondelete="CASCADE"),
                                        nullable=False)
    row_number: Mapped[int] = mapped_column(Integer, nullable=False)
    column: Mapped[str] = mapped_column(String(80), nullable=False)
    problem: Mapped[str] = mapped_column(String(300), nullable=False)
    __table_args__ = (Index("ix_import_problems_job_row", "job_id", "row_number"),)


# --- payments arriving from outside: references, bank details, providers, notifications --------

class PaymentSettings(Base):
    """Where an institution's debtors pay: its collection CLABE (SPEI), bank and beneficiary,
    and the convenio (agreement number) a bank window or OXXO-style store quotes with the
    reference. An administrator's data (``institutions.manage``)."""

    __tablename__ = "payment_settings"
    institution_id: Mapped[int] = mapped_column(ForeignKey("portfolio.institutions.id"),
                                                primary_key=True)
    clabe: Mapped[str | None] = mapped_column(String(18))
    bank_name: Mapped[str] = mapped_column(String(80), nullable=False, server_default="")
    beneficiary: Mapped[str] = mapped_column(String(120), nullable=False, server_default="")
    convenio: Mapped[str] = mapped_column(String(20), nullable=False, server_default="")
    updated_at: Mapped[datetime] = _created()


class PaymentReference(Base):
    """An account's payment reference (``payment_refs``): derived from the account with a
    keyed hash, kept here so an incoming payment finds its account by an index."""

    __tablename__ = "payment_references"
    account_id: Mapped[int] = mapped_column(ForeignKey("portfolio.accounts.id", ondelete="CASCADE"),
                                            primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    reference: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("institution_id", "reference", name="uq_payment_references_reference"),
    )


class PaymentProvider(Base):
    """A payment provider or bank that posts payments to
    ``/api/v1/webhooks/payments/<name>``, signed with its secret (sealed at rest, never
    shown back), for one institution: data an administrator enters."""

    __tablename__ = "payment_providers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("portfolio.institutions.id"),
                                                nullable=False)
    secret_sealed: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[datetime] = _created()


class PaymentNotification(Base):
    """One payment a provider notified, once per (provider, provider's payment id): credited
    to the account its reference names, or waiting in the triage list (``unmatched``) until
    a supervisor assigns it to an account or dismisses it."""

    __tablename__ = "payment_notifications"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("portfolio.payment_providers.id"),
                                             nullable=False)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    payment_id: Mapped[str] = mapped_column(String(80), nullable=False)
    reference: Mapped[str] = mapped_column(String(40), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    paid_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = _created()
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    movement_id: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(300), nullable=False, server_default="")
    resolved_by: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("provider_id", "payment_id", name="uq_payment_notifications_payment"),
        CheckConstraint("status IN ('credited', 'unmatched', 'assigned', 'dismissed')",
                        name="status"),
        Index("ix_payment_notifications_triage", "institution_id", "status", "received_at"),
    )
