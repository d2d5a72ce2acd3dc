"""Tables of the reports service, all in its own ``reports`` schema.

A schedule is one user's standing order: this report, with these filters, in this
format, daily, weekly or monthly at an hour of a time zone, to these recipients. Each
time it comes due a run records the period it covered, what came of it and the file
(kept for the last ``KEEP_RUNS`` runs, so it can be downloaded again).
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index,
                        Integer, LargeBinary, String, Text, func, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from recaudo_common.models import service_base

Base = service_base("reports")

RUN_STATES = ("sent", "failed")
KEEP_RUNS = 10


def _now():
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Schedule(Base):
    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: who ordered it: the report runs with this user's permissions and scope as they are then
    owner_id: Mapped[int] = mapped_column(Integer, nullable=False)
    #: None: every institution the owner may see
    institution_id: Mapped[int | None] = mapped_column(Integer)
    report: Mapped[str] = mapped_column(String(40), nullable=False)
    #: the report's filters other than the dates (the period comes from the frequency)
    filters: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'"))
    format: Mapped[str] = mapped_column(String(4), nullable=False, server_default="xlsx")
    frequency: Mapped[str] = mapped_column(String(7), nullable=False)
    #: weekly: 0 Monday … 6 Sunday; monthly: day 1-28
    weekday: Mapped[int | None] = mapped_column(Integer)
    month_day: Mapped[int | None] = mapped_column(Integer)
    hour: Mapped[int] = mapped_column(Integer, nullable=False, server_default="7")
    time_zone: Mapped[str] = mapped_column(String(60), nullable=False,
                                           server_default="America/Mexico_City")
    recipients: Mapped[list] = mapped_column(JSONB, nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (
        CheckConstraint("frequency IN ('daily', 'weekly', 'monthly')", name="frequency"),
        CheckConstraint("format IN ('csv', 'xlsx', 'pdf')", name="format"),
        CheckConstraint("hour BETWEEN 0 AND 23", name="hour"),
        CheckConstraint("(frequency = 'weekly') = (weekday IS NOT NULL)", name="weekday"),
        CheckConstraint("(frequency = 'monthly') = (month_day IS NOT NULL)", name="month_day"),
        CheckConstraint("weekday IS NULL OR weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("month_day IS NULL OR month_day BETWEEN 1 AND 28", name="month_day_range"),
        Index("ix_schedules_owner", "owner_id"),
        Index("ix_schedules_due", "next_run_at", postgresql_where=text("active")),
    )


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("reports.schedules.id", ondelete="CASCADE"), nullable=False)
    period_from: Mapped[date | None] = mapped_column(Date)
    period_to: Mapped[date | None] = mapped_column(Date)
    started_at: Mapped[datetime] = _now()
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    filename: Mapped[str | None] = mapped_column(String(120))
    content_type: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    __table_args__ = (
        CheckConstraint("state IN ('sent', 'failed')", name="state"),
        Index("ix_runs_schedule", "schedule_id", "id"),
    )
