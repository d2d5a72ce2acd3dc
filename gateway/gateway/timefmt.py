"""The one place times become text: every template prints a moment, a day or a time of
day through the filters registered here, never by itself.

The rule: moments are stored and exchanged in UTC (the API answers ISO-8601 with its
offset, which machines read fine); a person sees them in *their* zone: the user's own
setting, else the zone of their institution, else ``DEFAULT_ZONE`` (an anonymous reader,
as the holder of a share link, sees the default zone, the one links are made in). A *day*
(today, due dates, snapshots, rollups) is the institution's calendar day, already a date
when it reaches the gateway, and is shown as it is.

Filters (the views may call the functions of the same names):

- ``moment``: date and time of a timestamp in the reader's zone ("10/12/26, 23:59");
- ``day``: a date ("10 dic 2026"); given a timestamp, the day it falls on in the zone;
- ``clock``: the time of day of a timestamp in the reader's zone ("23:59").
"""
from __future__ import annotations

import threading
import time as _time
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_date, format_datetime, format_time
from flask import g, has_request_context

from recaudo_common.localtime import DEFAULT_ZONE, today_in, zone

from .i18n import current_language

#: seconds the institutions' zones are kept before asking the portfolio service again
ZONES_TTL = 300.0

_zones: dict[int, str] = {}
_zones_at = 0.0
_zones_lock = threading.Lock()


def _institution_zones() -> dict[int, str]:
    """id -> zone of the institutions the reader may see (cached by process: zones of
    institutions change seldom, and a page must not cost a round trip for them)."""
    global _zones, _zones_at
    if _time.monotonic() - _zones_at < ZONES_TTL:
        return _zones
    from .rpc import rpc   # the RPC plumbing needs the app; imported when first asked
    try:
        with rpc() as proxy:
            fresh = {i["id"]: i["time_zone"] for i in proxy.portfolio.list_institutions()}
    except Exception:   # noqa: BLE001 - a page prints in the default zone rather than fail
        return _zones
    with _zones_lock:
        _zones, _zones_at = {**_zones, **fresh}, _time.monotonic()
    return _zones


def user_zone_name(user: dict | None) -> str:
    """The zone ``user`` reads times in: their own setting, else their institution's."""
    if not user:
        return DEFAULT_ZONE
    if user.get("time_zone"):
        return user["time_zone"]
    institutions = user.get("institutions")
    if institutions:   # a creditor or staff of some institutions: the first one's zone
        return _institution_zones().get(institutions[0], DEFAULT_ZONE)
    return DEFAULT_ZONE


def reader_zone() -> ZoneInfo:
    """The zone of whoever this request is for (computed once per request)."""
    if not has_request_context():
        return zone(DEFAULT_ZONE)
    if "reader_zone" not in g:
        g.reader_zone = zone(user_zone_name(g.get("user")))
    return g.reader_zone


def institution_today(time_zone: str | None = None) -> date:
    """Today in an institution's zone (the reader's when none is named)."""
    return today_in(time_zone or str(reader_zone()))


def as_moment(value) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return None
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _locale() -> str:
    return current_language()


def moment(value, time_zone: str | None = None) -> str:
    """A timestamp's date and time in the reader's zone (or ``time_zone``)."""
    when = as_moment(value)
    if when is None:
        return day(value) if value else ""
    return format_datetime(when.astimezone(zone(time_zone) if time_zone else reader_zone()),
                           "short", locale=_locale())


def day(value, time_zone: str | None = None) -> str:
    """A date as it is; a timestamp as the day it falls on in the reader's zone."""
    if not value:
        return ""
    if isinstance(value, date) and not isinstance(value, datetime):
        return format_date(value, "medium", locale=_locale())
    text = str(value)
    if len(text) == 10:
        try:
            return format_date(date.fromisoformat(text), "medium", locale=_locale())
        except ValueError:
            return text
    when = as_moment(value)
    if when is None:
        return text
    local = when.astimezone(zone(time_zone) if time_zone else reader_zone())
    return format_date(local.date(), "medium", locale=_locale())


def clock(value, time_zone: str | None = None) -> str:
    """The time of day of a timestamp in the reader's zone (or ``time_zone``)."""
    when = as_moment(value)
    if when is None:
        return ""
    return format_time(when.astimezone(zone(time_zone) if time_zone else reader_zone()),
                       "short", locale=_locale())


FILTERS = {"moment": moment, "day": day, "clock": clock}
#: the zones a user may choose (IANA names)
TIME_ZONES = sorted(available_timezones())


def init_app(app) -> None:
    for name, function in FILTERS.items():
        app.add_template_filter(function, name)

    @app.context_processor
    def zones():
        return {"TIME_ZONES": TIME_ZONES}
