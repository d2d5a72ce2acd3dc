"""Preventive campaigns' own logic, without broker or database: the hold-out draw, the day
a scheduled run is due in the institution's zone, what messaging's answers do to a target,
and what a campaign may be saved with."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from marshmallow import ValidationError
from sqlalchemy.dialects import postgresql

from queues import campaigns
from queues.models import Campaign, CampaignTarget
from queues.contracts import CampaignWrite

ZONE = "America/Mexico_City"


def test_the_holdout_draw_is_fixed_per_campaign_and_account():
    draws = [campaigns.holdout_bucket(7, a) for a in range(1, 1001)]
    assert draws == [campaigns.holdout_bucket(7, a) for a in range(1, 1001)]
    assert all(0 <= d < 100 for d in draws)
    # another campaign draws otherwise: not always the same accounts left out
    assert draws != [campaigns.holdout_bucket(8, a) for a in range(1, 1001)]


@pytest.mark.parametrize("share", [0, 10, 20, 50])
def test_the_holdout_takes_about_its_share(share):
    accounts = range(1, 20_001)
    held = sum(campaigns.in_holdout(3, a, share) for a in accounts)
    assert abs(held / len(accounts) * 100 - share) < 1.5
    if share == 0:
        assert held == 0


def test_a_larger_share_keeps_everyone_a_smaller_one_held():
    small = {a for a in range(1, 5001) if campaigns.in_holdout(4, a, 10)}
    large = {a for a in range(1, 5001) if campaigns.in_holdout(4, a, 30)}
    assert small < large


def _campaign(hour=9, created=datetime(2026, 12, 1, tzinfo=timezone.utc)):
    return Campaign(id=1, institution_id=1, send_hour=hour, created_at=created)


def test_a_run_is_due_from_its_hour_in_the_institution_s_zone():
    # 14:59 UTC is 08:59 in Mexico City: not yet; 15:00 UTC is 09:00 there
    assert campaigns.due_today(_campaign(), ZONE, datetime(2026, 12, 7, 14, 59, tzinfo=timezone.utc)) is None
    assert campaigns.due_today(_campaign(), ZONE, datetime(2026, 12, 7, 15, 0, tzinfo=timezone.utc)) \
        == date(2026, 12, 7)
    # 05:00 UTC on the 7th is still the 6th there: the day is the institution's
    assert campaigns.due_today(_campaign(hour=20), ZONE,
                               datetime(2026, 12, 7, 5, 0, tzinfo=timezone.utc)) == date(2026, 12, 6)


def test_a_campaign_created_after_its_hour_starts_the_next_day():
    created = datetime(2026, 12, 7, 17, 0, tzinfo=timezone.utc)        # 11:00 there
    campaign = _campaign(created=created)
    assert campaigns.due_today(campaign, ZONE, datetime(2026, 12, 7, 18, 0, tzinfo=timezone.utc)) is None
    assert campaigns.due_today(campaign, ZONE, datetime(2026, 12, 8, 15, 30, tzinfo=timezone.utc)) \
        == date(2026, 12, 8)


def test_messaging_s_answers_mark_the_target():
    refused = CampaignTarget(state="pending")
    campaigns.record_answer(refused, {"state": "refused", "cause": "do_not_contact",
                                      "reason": "El deudor pidió no ser contactado"})
    assert (refused.state, refused.refusal_cause, refused.message_uuid) == \
        ("refused", "do_not_contact", None)
    sent = CampaignTarget(state="pending")
    campaigns.record_answer(sent, {"uuid": "u-1", "activity_id": 9, "state": "queued"})
    assert (sent.state, sent.message_uuid, sent.activity_id) == ("sent", "u-1", 9)
    failed = CampaignTarget(state="pending")
    campaigns.record_failure(failed, "Sin buzón de salida " * 30)
    assert failed.state == "failed" and len(failed.refusal_reason) == 300


def test_a_campaign_request_carries_its_campaign_and_a_key_per_target():
    target = CampaignTarget(id=41, campaign_id=2, account_id=5, cycle_date=date(2026, 12, 10),
                            run_id=7)
    campaign = Campaign(id=2, template_id=3, language="es", channel="letter", portal_link=False)
    assert campaigns.message_request(target, campaign) == {
        "account_id": 5, "template_id": 3, "language": "es", "channel": "letter",
        "campaign_id": 2, "idempotency_key": "campaign-2-5-20261210", "portal_link": False,
        "run_id": 7}
    # with the portal link, messaging has auth make one per run and debtor (the run's id)
    campaign = Campaign(id=2, template_id=3, language="es", channel="sms", portal_link=True)
    assert campaigns.message_request(target, campaign)["portal_link"] is True


GOOD = {"institution_id": 1, "name": "Vence en 3 días", "channel": "email", "template_id": 1,
        "conditions": {"all": [{"field": "stage", "op": "eq", "value": "current"},
                               {"field": "days_to_next_due", "op": "between", "value": [0, 3]},
                               {"field": "balance", "op": "gt", "value": "500.00"}]}}


def test_a_campaign_is_saved_with_the_queue_rules_conditions():
    loaded = CampaignWrite().load(GOOD)
    assert (loaded["send_hour"], loaded["holdout_share"], loaded["language"]) == (9, 0, "es")
    assert loaded["portal_link"] is False
    by_sms = CampaignWrite().load({**GOOD, "channel": "sms", "portal_link": True})
    assert (by_sms["channel"], by_sms["portal_link"]) == ("sms", True)


@pytest.mark.parametrize("change, field", [
    ({"holdout_share": 60}, "holdout_share"),
    ({"send_hour": 24}, "send_hour"),
    ({"channel": "fax"}, "channel"),
    ({"channel": "letter", "portal_link": True}, "portal_link"),
    ({"conditions": {"all": [{"field": "days_to_next_due", "op": "gt", "value": "x"}]}},
     "conditions"),
    ({"name": ""}, "name"),
])
def test_bad_campaigns_are_refused_naming_the_field(change, field):
    with pytest.raises(ValidationError) as err:
        CampaignWrite().load({**GOOD, **change})
    assert set(err.value.messages) == {field}


def test_the_pick_is_the_rule_engine_s_condition_within_the_institution():
    campaign = Campaign(id=5, institution_id=3, holdout_share=20, conditions=GOOD["conditions"])
    sql = str(campaigns._matching(campaign).compile(dialect=postgresql.dialect(),
                                                    compile_kwargs={"literal_binds": True}))
    assert "account_facts.institution_id = 3" in sql
    assert "account_facts.next_due_date - CURRENT_DATE BETWEEN 0 AND 3" in sql
    # the first 32 bits of the MD5, as holdout_bucket takes them
    assert "substr(md5('5:' || CAST(queues.account_facts.account_id AS VARCHAR)), 1, 8)" \
        " AS BIT(32)) AS BIGINT) %% 100 < 20" in sql
    assert Decimal("500.00") == Decimal(GOOD["conditions"]["all"][2]["value"])


def test_a_letter_is_judged_on_do_not_contact_only():
    from recaudo_common import contact_policy

    view = {"institution": {"time_zone": ZONE, "contact_from": "07:00", "contact_until": "22:00"},
            "debtor": {"time_zone": ZONE}, "emails": [], "phones": [],
            "addresses": [{"id": 1, "do_not_contact": False}, {"id": 2, "do_not_contact": True}]}
    night = datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)            # 02:00 there
    assert contact_policy.verdict_for(view, "letter", "1", now=night).allowed
    refused = contact_policy.verdict_for(view, "letter", "2", now=night)
    assert (refused.allowed, refused.cause) == (False, contact_policy.DO_NOT_CONTACT)
    # an email at that hour is refused for the hour
    assert contact_policy.verdict_for(view, "email", "a@b.mx", now=night).cause == \
        contact_policy.OUTSIDE_HOURS
