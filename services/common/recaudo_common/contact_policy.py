"""The one contact policy: may this debtor be contacted now, on this channel?

Contact is allowed inside the institution's window (default 07:00-22:00) in the
debtor's local time, and never on a channel marked do-not-contact. Every place
about to contact someone asks here: the next-account pull (in SQL, over many
accounts at once), sending email or fax and logging an outbound call (in Python).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Time, and_, cast, func, not_

DEFAULT_ZONE = "America/Mexico_City"
DEFAULT_FROM = time(7, 0)
DEFAULT_UNTIL = time(22, 0)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def may_contact(*, time_zone: str | None, window_from: time = DEFAULT_FROM,
                window_until: time = DEFAULT_UNTIL, do_not_contact: bool = False,
                now: datetime | None = None) -> Verdict:
    if do_not_contact:
        return Verdict(False, "El deudor pidió no ser contactado por este medio")
    local = (now or datetime.now(timezone.utc)).astimezone(_zone(time_zone))
    if not window_from <= local.time() <= window_until:
        return Verdict(False, f"Fuera del horario permitido ({window_from:%H:%M}-"
                              f"{window_until:%H:%M} hora local del deudor; allí son "
                              f"las {local:%H:%M})")
    return Verdict(True)


def sql_may_contact(time_zone, window_from, window_until, do_not_contact):
    """The same rule as a SQL condition over columns (for set-based pulls)."""
    local_time = cast(func.timezone(func.coalesce(time_zone, DEFAULT_ZONE), func.now()), Time)
    return and_(not_(do_not_contact), local_time.between(window_from, window_until))
