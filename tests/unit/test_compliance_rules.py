"""Each rule of each seeded contact policy (issue 24): MX, US and the default, evaluated
in order, each refusal naming its rule and the policy version. The engine is pure (the
activities service hands it the debt's calls and the debtor's preferences), so every rule
is shown here refusing what it must and allowing what it must not refuse."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from recaudo_common import contact_policy as cp
from recaudo_common.contact_policy import verdict_for

#: a Tuesday, 16:00 UTC: 10:00 in Mexico City, 11:00 in New York (EST)
NOON = datetime(2026, 12, 8, 16, 0, tzinfo=timezone.utc)


def view(jurisdiction="US", zone="America/New_York", **institution) -> dict:
    return {"institution": {"id": 1, "time_zone": zone, "jurisdiction": jurisdiction,
                            "contact_from": institution.get("contact_from", "06:00"),
                            "contact_until": institution.get("contact_until", "23:30")},
            "debtor": {"id": 42, "time_zone": None},
            "account": {"id": 7},
            "phones": [{"number": "2125550100", "do_not_call": False},
                       {"number": "2125550199", "do_not_call": True}],
            "guarantors": [{"phone": "5588887777"}],
            "emails": [{"address": "ana@cliente.test", "do_not_contact": False}],
            "addresses": [{"id": 5, "do_not_contact": False}],
            "caller_id": institution.get("caller_id", "5550000001")}


def call(v, now=NOON, number="2125550100", **facts):
    return verdict_for(v, "call", number, now=now, **facts)


def refused_by(verdict, rule, version):
    return (verdict.allowed, verdict.rule, verdict.policy_version) == (False, rule, version)


# --- MX --------------------------------------------------------------------------------------

def test_mx_window_is_07_to_22_in_the_debtors_zone_even_if_the_institution_allows_more():
    mx = view("MX", "America/Mexico_City")
    assert call(mx).allowed and call(mx).policy_version == "MX-2"
    # 06:30 in Mexico City (UTC-6): the institution's 06:00 does not widen the law's 07:00
    assert refused_by(call(mx, NOON.replace(hour=12, minute=30)), cp.WINDOW, "MX-2")
    assert refused_by(call(mx, NOON.replace(hour=4, minute=30) + timedelta(days=1)),
                      cp.WINDOW, "MX-2")   # 22:30
    assert call(mx, NOON.replace(hour=13, minute=0)).allowed   # 07:00


def test_mx_contacts_no_third_party_but_registered_guarantors_and_references():
    mx = view("MX", "America/Mexico_City")
    assert refused_by(call(mx, number="5512341234"), cp.THIRD_PARTY, "MX-2")
    assert call(mx, number="55 8888 7777").allowed   # the guarantor (aval)
    assert call(mx, number="(212) 555-0100").allowed   # the debtor's own
    # email and letters go to the debtor's addresses: no third party by number
    assert verdict_for(mx, "email", "ana@cliente.test", now=NOON).allowed


def test_mx_no_hidden_caller_id_a_call_from_no_known_number_is_refused():
    assert refused_by(call(view("MX", caller_id=None)), cp.CALLER_ID, "MX-2")
    assert refused_by(call(view("MX", caller_id="  ")), cp.CALLER_ID, "MX-2")
    assert call(view("MX", caller_id="+52 55 5000 0001")).allowed
    # other channels show their sender by themselves; US and the default do not ask it
    assert verdict_for(view("MX", caller_id=None), "sms", "2125550100", now=NOON).allowed
    assert call(view("US", caller_id=None)).allowed


def test_mx_every_agreement_goes_in_writing_and_the_rule_refuses_no_contact():
    assert cp.requires_written_agreement(cp.seeded_policy("MX"))
    assert not cp.requires_written_agreement(cp.seeded_policy("US"))
    assert not cp.requires_written_agreement(cp.seeded_policy("CO"))
    written_only = {"jurisdiction": "MX", "version": 9, "rules": [{"rule": cp.WRITTEN_AGREEMENT}]}
    assert call(view("MX"), policy=written_only).allowed


def test_mx_do_not_contact_comes_first():
    assert refused_by(call(view("MX"), number="2125550199"), cp.DO_NOT_CONTACT, "MX-2")


# --- US --------------------------------------------------------------------------------------

def test_us_window_is_08_to_21_at_the_debtors_zone_across_the_dst_change():
    us = view()
    # 12:30 UTC: 07:30 EST on Saturday 7 March 2026 (refused), 08:30 EDT on Monday 9 March
    assert refused_by(call(us, datetime(2026, 3, 7, 12, 30, tzinfo=timezone.utc)),
                      cp.WINDOW, "US-1")
    assert call(us, datetime(2026, 3, 9, 12, 30, tzinfo=timezone.utc)).allowed
    # 01:30 UTC: 20:30 EST the day before DST (allowed), 21:30 EDT after (refused)
    assert call(us, datetime(2026, 3, 8, 1, 30, tzinfo=timezone.utc)).allowed
    assert refused_by(call(us, datetime(2026, 3, 10, 1, 30, tzinfo=timezone.utc)),
                      cp.WINDOW, "US-1")


def test_us_cease_communication_stops_every_channel():
    prefs = {"cease_at": "2026-12-01T10:00:00+00:00"}
    for channel, to in (("call", "2125550100"), ("email", "ana@cliente.test"), ("letter", "5"),
                        ("sms", "2125550100")):
        assert refused_by(verdict_for(view(), channel, to, now=NOON, preferences=prefs),
                          cp.CEASE, "US-1")
    assert verdict_for(view(), "letter", "5", now=NOON).allowed


def test_us_an_attorney_stops_direct_contact():
    prefs = {"attorney": {"name": "Lic. Ruiz", "contact": "ruiz@bufete.test"}}
    verdict = call(view(), preferences=prefs)
    assert refused_by(verdict, cp.ATTORNEY, "US-1") and "Lic. Ruiz" in verdict.reason


def test_us_no_contact_at_a_time_the_debtor_said_is_inconvenient():
    # Tuesday 11:00-12:00 in New York does not suit them
    prefs = {"inconvenient": [{"weekdays": [1], "from": "11:00", "until": "12:00"}]}
    assert refused_by(call(view(), preferences=prefs), cp.INCONVENIENT, "US-1")
    assert call(view(), NOON + timedelta(days=1), preferences=prefs).allowed   # Wednesday
    assert call(view(), NOON + timedelta(hours=2), preferences=prefs).allowed  # 13:00


def attempts(n, before=NOON, step=timedelta(hours=20)):
    return [before - step * (i + 1) for i in range(n)]


def test_us_more_than_7_call_attempts_within_7_days_is_refused():
    assert call(view(), history={"call_attempts": attempts(6)}).allowed
    assert refused_by(call(view(), history={"call_attempts": attempts(7)}), cp.FREQUENCY, "US-1")
    # attempts older than 7 days do not count
    old = attempts(7, before=NOON - timedelta(days=3))
    assert call(view(), history={"call_attempts": old}).allowed
    # the rule is for calls: an email is not an attempt of this kind
    assert verdict_for(view(), "email", "ana@cliente.test", now=NOON,
                       history={"call_attempts": attempts(7)}).allowed


def test_us_a_telephone_conversation_bars_calls_for_the_next_7_days():
    talked = {"call_attempts": [NOON - timedelta(days=6)],
              "conversations": [NOON - timedelta(days=6)]}
    verdict = call(view(), history=talked)
    assert refused_by(verdict, cp.FREQUENCY, "US-1") and "conversación" in verdict.reason
    over = {"conversations": [NOON - timedelta(days=7, minutes=1)]}
    assert call(view(), history=over).allowed


def test_us_calls_with_prior_consent_are_excluded():
    history = {"call_attempts": attempts(7), "conversations": [NOON - timedelta(days=1)]}
    consent = {"consent": {"call": {"given_at": (NOON - timedelta(days=2)).isoformat(),
                                    "source": "llamada entrante"}}}
    assert call(view(), history=history, preferences=consent).allowed
    withdrawn = {"consent": {"call": {"given_at": (NOON - timedelta(days=2)).isoformat(),
                                      "withdrawn_at": (NOON - timedelta(days=1)).isoformat()}}}
    assert refused_by(call(view(), history=history, preferences=withdrawn), cp.FREQUENCY, "US-1")
    # the attempts made under consent do not count toward the next unconsented call
    under = {"consent": {"call": {"given_at": (NOON - timedelta(days=6, hours=23)).isoformat(),
                                  "withdrawn_at": (NOON - timedelta(hours=1)).isoformat()}}}
    assert call(view(), history={"call_attempts": attempts(7)}, preferences=under).allowed


def test_us_rules_are_evaluated_in_order():
    everything = {"cease_at": "2026-12-01T10:00:00+00:00", "attorney": {"name": "Lic. Ruiz"}}
    assert call(view(), preferences=everything).rule == cp.CEASE
    assert call(view(), number="2125550199", preferences=everything).rule == cp.DO_NOT_CONTACT


# --- default -----------------------------------------------------------------------------------

def test_the_default_policy_is_the_window_only():
    co = view("CO", "America/Bogota")
    prefs = {"cease_at": "2026-12-01T10:00:00+00:00", "attorney": {"name": "Lic. Ruiz"}}
    verdict = call(co, preferences=prefs, history={"call_attempts": attempts(9)})
    assert verdict.allowed and verdict.policy_version == "*-1"
    # 05:00 in Bogotá, before the institution's 06:00
    assert refused_by(call(co, NOON.replace(hour=10)), cp.WINDOW, "*-1")


def test_a_stored_version_is_judged_and_named():
    stricter = {"jurisdiction": "US", "version": 2,
                "rules": [{"rule": cp.FREQUENCY, "attempts": 3, "days": 7}]}
    assert refused_by(call(view(), policy=stricter, history={"call_attempts": attempts(3)}),
                      cp.FREQUENCY, "US-2")


# --- the hold the set-based pull compares with its clock ------------------------------------------

def test_the_hold_ends_when_the_seventh_attempt_leaves_the_7_days_or_a_conversation_does():
    us = cp.seeded_policy("US")
    calls = attempts(7)
    held = cp.hold_until(us, {"call_attempts": calls}, {}, NOON)
    assert held == calls[6] + timedelta(days=7)
    # just before it ends the verdict refuses, at its end it allows
    assert not call(view(), held - timedelta(minutes=1), history={"call_attempts": calls}).allowed
    assert cp.hold_until(us, {"call_attempts": attempts(6)}, {}, NOON) is None
    talked = NOON - timedelta(days=2)
    assert cp.hold_until(us, {"conversations": [talked]}, {}, NOON) == talked + timedelta(days=7)
    assert cp.hold_until(us, {}, {"cease_at": "2026-12-01T00:00:00+00:00"}, NOON) == cp.FOREVER
    assert cp.hold_until(us, {}, {"attorney": {"name": "Lic. Ruiz"}}, NOON) == cp.FOREVER
    # MX and the default have none of these rules
    assert cp.hold_until(cp.seeded_policy("MX"), {"call_attempts": calls},
                         {"cease_at": "2026-12-01T00:00:00+00:00"}, NOON) is None
