"""A day is the institution's calendar day, not the server's (UTC) one."""
from __future__ import annotations

from datetime import date, datetime, timezone

from recaudo_common.localtime import DEFAULT_ZONE, today_in, zone


def test_today_is_the_institutions_day_not_the_servers():
    # 06:00 UTC on the 7th is still the 6th in Mexico City (the issue's `{{ today }}`)
    late_evening = datetime(2026, 12, 7, 5, 30, tzinfo=timezone.utc)
    assert today_in("America/Mexico_City", late_evening) == date(2026, 12, 6)
    assert today_in(None, late_evening) == date(2026, 12, 6)
    assert today_in("Europe/Madrid", late_evening) == date(2026, 12, 7)


def test_an_unknown_zone_is_the_default():
    assert str(zone("Mars/Olympus")) == DEFAULT_ZONE
