"""The one contact policy as every service applies it in Python: the verdict for a debtor
view, channel and address (``verdict_for``: the debtor's zone, do-not-contact per address
or number, the institution's window), the refusal or an administrator's override
(``enforce``), the override's schema, and how the activities service judges a call."""
from __future__ import annotations

import contextlib
from datetime import datetime, time, timedelta, timezone
from unittest import mock

import pytest

from activities import log
from recaudo_common import contact_policy
from recaudo_common.contact_policy import DO_NOT_CONTACT, OUTSIDE_HOURS, enforce, verdict_for
from recaudo_common.errors import Conflict, InvalidInput, PermissionDenied
from recaudo_common.identity import Identity
from recaudo_common.validation import Override, load

#: 15:00 UTC: 09:00 in Mexico City (UTC-6), 07:00 in Tijuana (UTC-8 in winter), 10:00 in Cancún
NOON_UTC = datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc)


def view(**changes) -> dict:
    """A debtor view as the portfolio answers it (only what the policy reads)."""
    base = {"institution": {"id": 1, "time_zone": "America/Mexico_City",
                            "contact_from": "08:00", "contact_until": "21:00"},
            "debtor": {"id": 42, "time_zone": None},
            "phones": [{"number": "5512345678", "do_not_call": False},
                       {"number": "5599990000", "do_not_call": True}],
            "emails": [{"address": "ana@cliente.test", "do_not_contact": False},
                       {"address": "no-molestar@cliente.test", "do_not_contact": True}],
            "addresses": []}
    base.update(changes)
    return base


def test_inside_the_window_with_a_number_that_may_be_called_is_allowed():
    verdict = verdict_for(view(), "call", "5512345678", now=NOON_UTC)
    assert verdict == contact_policy.Verdict(True, policy_version="*-1")


def test_a_do_not_call_number_is_refused_whatever_its_formatting_and_the_hour():
    for number in ("5599990000", "55 9999-0000", "(55) 9999 0000"):
        verdict = verdict_for(view(), "call", number, now=NOON_UTC)
        assert not verdict.allowed and verdict.cause == DO_NOT_CONTACT
        assert "no ser contactado" in verdict.reason
    assert verdict_for(view(), "fax", "5599990000", now=NOON_UTC).cause == DO_NOT_CONTACT
    # a number the debtor does not have is judged by the hours only
    assert verdict_for(view(), "call", "5511112222", now=NOON_UTC).allowed
    assert verdict_for(view(), "call", "", now=NOON_UTC).allowed


def test_a_do_not_contact_email_is_refused_in_any_case_and_only_that_one():
    assert verdict_for(view(), "email", "No-Molestar@Cliente.test", now=NOON_UTC).cause \
        == DO_NOT_CONTACT
    assert verdict_for(view(), "email", "ana@cliente.test", now=NOON_UTC).allowed
    # a phone's flag says nothing about email, and the reverse
    assert verdict_for(view(), "email", "5599990000", now=NOON_UTC).allowed


def test_the_window_is_the_institutions_in_the_debtors_own_zone_first():
    # 09:00 in Mexico City is inside 08:00-21:00; 07:00 in Tijuana is not
    assert verdict_for(view(), "call", "5512345678", now=NOON_UTC).allowed
    tijuana = view(debtor={"id": 42, "time_zone": "America/Tijuana"})
    verdict = verdict_for(tijuana, "call", "5512345678", now=NOON_UTC)
    assert not verdict.allowed and verdict.cause == OUTSIDE_HOURS
    assert "08:00-21:00" in verdict.reason and "07:00" in verdict.reason


def test_without_the_debtors_zone_an_address_zone_then_the_institutions_is_used():
    by_address = view(addresses=[{"time_zone": None}, {"time_zone": "America/Tijuana"}])
    assert verdict_for(by_address, "call", "5512345678", now=NOON_UTC).cause == OUTSIDE_HOURS
    own_zone_wins = view(debtor={"id": 42, "time_zone": "America/Cancun"},
                         addresses=[{"time_zone": "America/Tijuana"}])
    assert verdict_for(own_zone_wins, "call", "5512345678", now=NOON_UTC).allowed
    institution = view(institution={"time_zone": "America/Tijuana", "contact_from": "08:00",
                                    "contact_until": "21:00"})
    assert verdict_for(institution, "call", "5512345678", now=NOON_UTC).cause == OUTSIDE_HOURS


def test_the_window_defaults_to_7_to_22_when_the_institution_has_none_or_a_bad_one():
    at_0630 = datetime(2026, 12, 3, 12, 30, tzinfo=timezone.utc)     # 06:30 in Mexico City
    at_0730 = at_0630 + timedelta(hours=1)
    for institution in ({"time_zone": "America/Mexico_City"},
                        {"time_zone": "America/Mexico_City", "contact_from": "nonsense",
                         "contact_until": None}):
        v = view(institution=institution)
        assert verdict_for(v, "call", "5512345678", now=at_0630).cause == OUTSIDE_HOURS
        assert verdict_for(v, "call", "5512345678", now=at_0730).allowed
    as_times = view(institution={"contact_from": time(10), "contact_until": time(11)})
    assert verdict_for(as_times, "call", "5512345678", now=NOON_UTC).cause == OUTSIDE_HOURS


def test_an_unknown_zone_falls_back_to_mexico_city():
    odd = view(debtor={"id": 42, "time_zone": "Marte/Olympus"})
    assert verdict_for(odd, "call", "5512345678", now=NOON_UTC).allowed


def test_without_now_the_verdict_is_for_this_moment():
    always = view(institution={"contact_from": "00:00", "contact_until": "23:59:59"})
    assert verdict_for(always, "call", "5512345678").allowed
    never = view(institution={"contact_from": "00:00", "contact_until": "00:00"})
    with mock.patch.object(contact_policy, "datetime", wraps=datetime) as clock:
        clock.now.return_value = NOON_UTC
        assert verdict_for(never, "call", "5512345678").cause == OUTSIDE_HOURS


# --- refusing, or an administrator's override ---------------------------------------------------

ADMIN = Identity(user_id=1, username="admin", profile="Administrador",
                 permissions=frozenset({"activities.manage"}))
GESTOR = Identity(user_id=3, username="gestor1", profile="Gestor",
                  permissions=frozenset({"activities.log"}))
REFUSED = contact_policy.Verdict(False, "Fuera del horario permitido", OUTSIDE_HOURS,
                                 "window", "MX-1")
REASON = {"justification": "Orden judicial: notificación obligatoria"}


def test_an_allowed_contact_needs_no_override():
    assert enforce(contact_policy.Verdict(True), "phone", None, GESTOR, "x.manage") is None
    assert enforce(contact_policy.Verdict(True), "phone", REASON, GESTOR, "x.manage") is None


def test_a_refusal_names_the_field_with_the_reason():
    with pytest.raises(Conflict) as err:
        enforce(REFUSED, "started_at", None, ADMIN, "activities.manage")
    assert err.value.fields == {"started_at": ["Fuera del horario permitido"],
                                "rule": ["window"], "reason": ["Fuera del horario permitido"],
                                "policy_version": ["MX-1"]}
    assert err.value.message == "Fuera del horario permitido"


def test_only_the_permission_holder_overrides_and_the_record_says_who_and_why():
    with pytest.raises(PermissionDenied):
        enforce(REFUSED, "phone", REASON, GESTOR, "activities.manage")
    record = enforce(REFUSED, "phone", REASON, ADMIN, "activities.manage")
    assert record == ("Fuera del horario permitido. Autorizado por admin: "
                      "Orden judicial: notificación obligatoria")


def test_a_justification_is_words_of_bounded_length():
    assert load(Override(), {"justification": "  Orden judicial  "}) == {
        "justification": "Orden judicial"}
    for bad in ({"justification": " " * 40}, {"justification": "corta"},
                {"justification": "x" * 2001}, {"justification": None}, {}):
        with pytest.raises(InvalidInput) as err:
            load(Override(), bad)
        assert "justification" in err.value.fields, bad


# --- how the activities service judges an entry --------------------------------------------------

def call(**changes) -> dict:
    base = {"kind": "call", "direction": "outbound", "phone": "5512345678",
            "started_at": NOON_UTC, "override": None}
    base.update(changes)
    return base


def test_only_outbound_calls_are_judged_named_phone_or_not():
    assert log.judged_by_policy(call())
    assert log.judged_by_policy(call(phone=None))   # its hour still counts
    assert not log.judged_by_policy(call(direction="inbound"))
    assert not log.judged_by_policy(call(kind="note"))
    assert not log.judged_by_policy(call(kind="visit"))


class _Db:
    """The activities database as ``_check_policy`` uses it (a refusal's own transaction)."""

    @contextlib.contextmanager
    def session(self):
        yield "own-session"


def _check(identity, contacts, data, recorded=None):
    """``log._check_policy`` with the engine over the view alone (no stored policy or
    history) and the compliance log kept in ``recorded``."""
    def judge(_session, view, channel, to, at):
        return verdict_for(view, channel, to, now=at)

    def record(session, _identity, _view, channel, to, verdict, justification=None):
        (recorded if recorded is not None else []).append(
            (session, channel, verdict.rule or verdict.cause, justification))
    with mock.patch.object(log.compliance, "judge", judge), \
            mock.patch.object(log.compliance, "record", record):
        return log._check_policy("session", _Db(), identity, contacts, data)


def test_a_call_is_judged_when_it_started_naming_phone_or_started_at():
    assert _check(GESTOR, view(), call()) is None
    recorded = []
    with pytest.raises(Conflict) as err:
        _check(GESTOR, view(), call(phone="55 9999 0000"), recorded)
    assert list(err.value.fields)[0] == "phone"
    # 03:00 in Mexico City, though it may be logged at any hour
    with pytest.raises(Conflict) as err:
        _check(GESTOR, view(), call(started_at=NOON_UTC - timedelta(hours=6)), recorded)
    assert list(err.value.fields)[0] == "started_at"
    assert "allí son las 03:00" in err.value.fields["started_at"][0]
    record = _check(ADMIN, view(), call(phone="5599990000", override=REASON), recorded)
    assert "Autorizado por admin" in record
    # refusals are kept in their own transaction, the override with the entry
    assert recorded == [("own-session", "call", DO_NOT_CONTACT, None),
                        ("own-session", "call", "window", None),
                        ("session", "call", DO_NOT_CONTACT, REASON["justification"])]
    # an inbound call at 03:00 is not judged (nor is the view needed)
    assert _check(GESTOR, None, call(direction="inbound",
                                     started_at=NOON_UTC - timedelta(hours=6))) is None
