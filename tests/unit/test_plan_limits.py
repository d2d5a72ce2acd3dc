"""The judging of terms against an institution's limits (activities/limits.py): which
plans are outside and why, and who approves a settlement's discount by band."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from activities.limits import discount_approver, plan_reasons
from activities.models import PlanLimits

TODAY = date(2026, 12, 7)
LIMITS = PlanLimits(max_instalments=3, min_first_payment=Decimal("50"),
                    min_first_payment_pct=Decimal("20"), max_plan_days=60,
                    discount_bands=[
                        {"stage": "delinquent", "dpd_from": 0, "dpd_to": 90, "thresholds": [
                            {"up_to_pct": "10", "approver": None},
                            {"up_to_pct": "30", "approver": "supervisor"}]},
                        {"stage": None, "dpd_from": 91, "dpd_to": None, "thresholds": [
                            {"up_to_pct": "20", "approver": None},
                            {"up_to_pct": "50", "approver": "supervisor"},
                            {"up_to_pct": "70", "approver": "administrator"}]}])


def plan(*amounts, days=10):
    return [{"number": n, "due_date": TODAY + timedelta(days=n * days), "amount": Decimal(a)}
            for n, a in enumerate(amounts, start=1)]


def fields(reasons):
    return [r["field"] for r in reasons]


def test_a_plan_inside_every_limit_has_no_reason():
    assert plan_reasons(LIMITS, plan("100", "200", "200"), TODAY) == []


def test_each_limit_names_its_field():
    assert fields(plan_reasons(LIMITS, plan("100", "100", "100", "100"), TODAY)) \
        == ["promise.instalments"]
    assert fields(plan_reasons(LIMITS, plan("49.99", "100"), TODAY)) \
        == ["promise.instalments.0.amount"]
    # 60 of 400 is 15 %, under the 20 % first payment
    assert fields(plan_reasons(LIMITS, plan("60", "340"), TODAY)) \
        == ["promise.instalments.0.amount"]
    assert fields(plan_reasons(LIMITS, plan("100", days=61), TODAY)) == ["promise.due_date"]
    assert fields(plan_reasons(LIMITS, plan("40", days=61), TODAY)) \
        == ["promise.amount", "promise.due_date"]


def test_a_discount_is_granted_approved_or_refused_by_its_band():
    assert discount_approver(LIMITS, "delinquent", 30, Decimal("0")) == (True, None)
    assert discount_approver(LIMITS, "delinquent", 30, Decimal("10")) == (True, None)
    assert discount_approver(LIMITS, "delinquent", 30, Decimal("10.01")) == (True, "supervisor")
    assert discount_approver(LIMITS, "delinquent", 30, Decimal("31")) == (False, None)
    assert discount_approver(LIMITS, "legal", 120, Decimal("60")) == (True, "administrator")
    assert discount_approver(LIMITS, "legal", 120, Decimal("71")) == (False, None)
    # no band for a legal account 30 days past due: no discount at all
    assert discount_approver(LIMITS, "legal", 30, Decimal("1")) == (False, None)


def test_the_limits_applying_to_an_account_name_its_band_and_what_needs_approval():
    from activities.limits import applying
    seen = applying(LIMITS, {"stage": "delinquent", "days_past_due": 45})
    assert seen["max_instalments"] == 3 and seen["max_plan_days"] == 60
    assert seen["band"]["dpd_to"] == 90
    assert (seen["free_pct"], seen["top_pct"]) == ("10", "30")
    beyond = applying(LIMITS, {"stage": "legal", "days_past_due": 200})
    assert (beyond["free_pct"], beyond["top_pct"]) == ("20", "70")
    none = applying(LIMITS, {"stage": "legal", "days_past_due": 30})
    assert none["band"] is None and none["top_pct"] == "0"


def test_the_verdict_before_logging_is_the_logging_s_judgement():
    from activities.limits import plan_verdict
    assert plan_verdict(LIMITS, plan("100", "200"), TODAY) == {
        "within": True, "reasons": [], "approver": None}
    outside = plan_verdict(LIMITS, plan("100", "100", "100", "100"), TODAY)
    assert outside["within"] is False and outside["approver"] == "supervisor"
    assert outside["reasons"] == plan_reasons(LIMITS, plan("100", "100", "100", "100"), TODAY)


def test_a_settlement_is_granted_waits_for_its_level_or_is_refused_by_the_band():
    import pytest
    from activities.limits import settlement
    from recaudo_common.errors import InvalidInput
    limits = PlanLimits(**{c: getattr(LIMITS, c) for c in (
        "max_instalments", "min_first_payment", "min_first_payment_pct", "max_plan_days",
        "discount_bands")}, offer_expiry_days=7)
    account = {"id": 5, "balance": "1000.00", "stage": "legal", "days_past_due": 120}
    terms, approver, reasons = settlement(limits, account, Decimal("20"), TODAY, "discount_pct")
    assert (terms["amount"], terms["pay_by"], approver, reasons) == (
        "800.00", (TODAY + timedelta(days=7)).isoformat(), None, [])
    terms, approver, reasons = settlement(limits, account, Decimal("55.5"), TODAY,
                                          "settlement.discount_pct", TODAY + timedelta(days=2))
    assert (terms["amount"], terms["discount_pct"], approver) == ("445.00", "55.50",
                                                                  "administrator")
    assert reasons[0]["field"] == "settlement.discount_pct" and "administrador" in \
        reasons[0]["message"]
    with pytest.raises(InvalidInput) as refused:
        settlement(limits, account, Decimal("71"), TODAY, "settlement.discount_pct")
    assert refused.value.fields == {"settlement": {"discount_pct": [
        "El descuento máximo que puede pedirse es 70%"]}}
    with pytest.raises(InvalidInput) as refused:                 # later than the offer stands
        settlement(limits, account, Decimal("5"), TODAY, "discount_pct", TODAY + timedelta(days=8))
    assert "pay_by" in refused.value.fields
