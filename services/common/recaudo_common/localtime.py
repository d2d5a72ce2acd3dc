"""The one rule for time: stored in UTC; a *day* (today, a due date, a snapshot, a rollup,
a template's ``{{ today }}``) is the calendar day in the institution's zone, never the
server's."""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: the zone of an institution that names none (the platform's home market)
DEFAULT_ZONE = "America/Mexico_City"


def zone(name: str | None) -> ZoneInfo:
    """``name`` as a zone; an empty or unknown name is the default zone."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def today_in(time_zone: str | None, now: datetime | None = None) -> date:
    """The calendar day it is now in ``time_zone``."""
    return (now or datetime.now(timezone.utc)).astimezone(zone(time_zone)).date()
