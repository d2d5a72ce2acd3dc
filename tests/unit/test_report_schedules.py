"""When a scheduled report comes due and what period it covers (no broker, no database)."""
from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from recaudo_common.errors import InvalidInput
from recaudo_common.validation import load
from reports import schedules
from reports.contracts import ScheduleWrite


def schedule(frequency, hour=7, weekday=None, month_day=None, zone="America/Mexico_City"):
    return SimpleNamespace(frequency=frequency, hour=hour, weekday=weekday, month_day=month_day,
                           time_zone=zone)


UTC = timezone.utc


def test_next_run_in_the_schedules_own_zone():
    # 10:00 UTC on Wed 5 March 2025 is 04:00 in Mexico City: today's 07:00 is still ahead
    after = datetime(2025, 3, 5, 10, 0, tzinfo=UTC)
    assert schedules.next_run(schedule("daily"), after) == datetime(2025, 3, 5, 13, 0, tzinfo=UTC)
    later = datetime(2025, 3, 5, 13, 0, tzinfo=UTC)        # exactly due: the next one
    assert schedules.next_run(schedule("daily"), later) == datetime(2025, 3, 6, 13, 0, tzinfo=UTC)
    assert schedules.next_run(schedule("weekly", weekday=0), after) == \
        datetime(2025, 3, 10, 13, 0, tzinfo=UTC)           # Monday
    assert schedules.next_run(schedule("monthly", month_day=1), after) == \
        datetime(2025, 4, 1, 13, 0, tzinfo=UTC)
    assert schedules.next_run(schedule("daily", hour=23, zone="UTC"), after) == \
        datetime(2025, 3, 5, 23, 0, tzinfo=UTC)


def test_the_period_a_run_covers():
    assert schedules.period("daily", date(2025, 3, 1)) == (date(2025, 2, 28), date(2025, 2, 28))
    assert schedules.period("weekly", date(2025, 3, 10)) == (date(2025, 3, 3), date(2025, 3, 9))
    assert schedules.period("monthly", date(2025, 3, 1)) == (date(2025, 2, 1), date(2025, 2, 28))
    assert schedules.period("monthly", date(2025, 1, 15)) == (date(2024, 12, 1),
                                                              date(2024, 12, 31))


BASE = {"report": "productivity", "frequency": "daily", "recipients": ["A@B.MX"]}


def test_a_schedule_is_checked_before_it_is_stored():
    data = schedules.normalise(load(ScheduleWrite(), {**BASE, "weekday": 3}))
    assert data["recipients"] == ["a@b.mx"] and data["weekday"] is None
    assert data["format"] == "xlsx" and data["hour"] == 7
    for change, field in (({"frequency": "weekly"}, "weekday"),
                          ({"frequency": "monthly", "month_day": 29}, "month_day"),
                          ({"time_zone": "Marte/Olimpo"}, "time_zone"),
                          ({"recipients": ["x"] * 21}, "recipients"),
                          ({"filters": {"stage": "current"}}, "filters"),
                          ({"filters": {"group_by": ["planeta"]}}, "filters"),
                          ({"filters": {"agent_id": "7"}}, "filters"),
                          ({"format": "docx"}, "format")):
        with pytest.raises(InvalidInput) as refused:
            load(ScheduleWrite(), {**BASE, **change})
        assert field in refused.value.fields, change


def test_the_query_of_a_run():
    s = SimpleNamespace(report="aging", filters={"stage": "delinquent"}, institution_id=3)
    assert schedules.query_for(s, date(2025, 2, 1), date(2025, 2, 28)) == {
        "stage": "delinquent", "institution_id": 3, "as_of": "2025-02-28",
        "group_by": ["stage"]}
    p = SimpleNamespace(report="productivity", filters={}, institution_id=None)
    assert schedules.query_for(p, date(2025, 2, 1), date(2025, 2, 28)) == {
        "date_from": "2025-02-01", "date_to": "2025-02-28", "group_by": ["agent"]}
