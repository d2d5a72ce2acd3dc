"""One rule for time in the UI: every template prints a moment through ``timefmt``'s
filters, in the reader's zone (their own, else their institution's, else Mexico City's)."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from flask import g

from gateway import timefmt
from gateway.app import create_app

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "gateway" / "templates"
#: a name that holds a moment: ``created_at``, ``e.at``, ``m.date`` and the like
MOMENT_NAME = re.compile(r"(\w+_at|\.at|\.date)\b")
FILTERED = re.compile(r"\|\s*(moment|day|clock)\b")
#: a machine-readable attribute (a hidden field, a data- attribute) keeps the ISO text
MACHINE_ATTRIBUTE = re.compile(r'(value|data-[\w-]+)="\{\{[^}]*\}\}"')
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


@pytest.fixture(scope="module")
def app():
    return create_app(testing=True)


def _printed_moments(source: str):
    for attribute in MACHINE_ATTRIBUTE.finditer(source):
        source = source.replace(attribute.group(0), "")
    for expression in re.findall(r"\{\{(.*?)\}\}", source, flags=re.S):
        bare = QUOTED.sub("''", expression)
        if MOMENT_NAME.search(bare) and not FILTERED.search(expression):
            yield expression.strip()


def test_no_template_prints_a_moment_without_the_filters():
    offenders = {str(path.relative_to(TEMPLATES)): list(_printed_moments(path.read_text()))
                 for path in TEMPLATES.rglob("*.html")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_static_check_catches_a_raw_moment():
    assert list(_printed_moments("<td>{{ job.created_at }}</td>")) == ["job.created_at"]
    assert list(_printed_moments('<input value="{{ form.started_at }}">')) == []
    assert list(_printed_moments("{{ errs(e, 'started_at') }}")) == []


def test_an_anonymous_reader_sees_the_institutions_zone(app):
    """The share page's bug: a link ending 10/12 23:59 −06:00 was shown as 11/12 5:59."""
    with app.test_request_context("/s/x"):
        g.user = None
        assert timefmt.moment("2026-12-11T05:59:59+00:00") == "10/12/26, 23:59"
        assert timefmt.day("2026-12-11T05:59:59+00:00") == "10 dic 2026"
        assert timefmt.clock("2026-12-11T05:59:59+00:00") == "23:59"


def test_a_user_reads_times_in_their_own_zone(app):
    with app.test_request_context("/"):
        g.user = {"time_zone": "Pacific/Kiritimati", "institutions": None, "language": "es"}
        moment = datetime(2026, 12, 7, 3, 30, tzinfo=timezone.utc)
        assert timefmt.moment(moment) == "7/12/26, 17:30"
        assert timefmt.moment(moment.isoformat()) == "7/12/26, 17:30"
        assert timefmt.day(moment) == "7 dic 2026"


def test_without_a_zone_of_their_own_a_user_reads_their_institutions(app, monkeypatch):
    monkeypatch.setattr(timefmt, "_institution_zones", lambda: {7: "America/Tijuana"})
    with app.test_request_context("/"):
        g.user = {"time_zone": None, "institutions": [7], "language": "es"}
        assert timefmt.clock("2026-12-07T03:30:00+00:00") == "19:30"
    with app.test_request_context("/"):
        g.user = {"time_zone": None, "institutions": None, "language": "es"}
        assert timefmt.clock("2026-12-07T03:30:00+00:00") == "21:30"   # Mexico City


def test_a_date_is_a_day_as_it_is(app):
    with app.test_request_context("/"):
        g.user = {"time_zone": "Pacific/Kiritimati", "institutions": None}
        assert timefmt.day("2026-12-10") == "10 dic 2026"
        assert timefmt.day(date(2026, 12, 10)) == "10 dic 2026"
        assert timefmt.moment(None) == "" and timefmt.day("") == ""


def test_the_filters_render_in_a_template(app):
    with app.test_request_context("/"):
        g.user = None
        rendered = app.jinja_env.from_string(
            "{{ t|moment }} · {{ t|clock }}").render(t="2026-12-11T05:59:59+00:00")
        assert rendered == "10/12/26, 23:59 · 23:59"
