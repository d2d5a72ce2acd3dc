"""Tables of the portfolio service, all in its own ``portfolio`` schema."""
from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import Boolean, DateTime, Integer, String, Time, func, text
from sqlalchemy.orm import Mapped, mapped_column

from recaudo_common.models import service_base

Base = service_base("portfolio")


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 server_default=func.now())
