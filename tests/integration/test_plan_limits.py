"""Plan limits per institution and the approval queue, over RabbitMQ against the real
database with the real portfolio service: the limits are data an administrator writes
(and every collector reads), a plan logged outside them is logged without its promise
and waits for a supervisor, who approves it (the promise is made then, announced apart
from its entry) or rejects it, once; another institution's approval answers like a
missing one.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied

from .helpers import scalar, sql
from .activities_world import (  # noqa: F401 (fixtures)
    ACC1, ADMIN, GESTOR1, GESTOR_PERMS, SUPERVISOR, admin, as_user, call, gestor1, outbox,
    portfolio_rows, saved_tables, services, today)

APPROVER_PERMS = GESTOR_PERMS | {"portfolio.read_all", "promises.approve"}
LIMITS = {"max_instalments": 3, "min_first_payment": "50.00", "min_first_payment_pct": "20",
          "max_plan_days": 60, "offer_expiry_days": 5,
          "discount_bands": [{"stage": "delinquent", "dpd_from": 0, "dpd_to": 90, "thresholds": [
              {"up_to_pct": "10"}, {"up_to_pct": "30", "approver": "supervisor"}]}]}


@pytest.fixture
def limited(services, engine):
    yield
    sql(engine, "TRUNCATE activities.approvals, activities.plan_limits")


@pytest.fixture
def approver(as_user, limited):
    return as_user(SUPERVISOR, APPROVER_PERMS, None)


def _plan(*amounts, start=1, step=10):
    day = today()
    return {"instalments": [{"due_date": (day + timedelta(days=start + n * step)).isoformat(),
                             "amount": a} for n, a in enumerate(amounts)]}


def test_limits_are_data_an_administrator_writes_and_collectors_read(gestor1, admin, limited):
    assert gestor1.get_plan_limits(1)["max_instalments"] == 36      # permissive until written
    with pytest.raises(PermissionDenied):
        gestor1.save_plan_limits(1, LIMITS)
    saved = admin.save_plan_limits(1, LIMITS)
    assert saved["max_instalments"] == 3 and saved["min_first_payment_pct"] == "20.00"
    assert saved["updated_by"] == ADMIN
    assert saved["discount_bands"][0]["thresholds"][1] == {"up_to_pct": "30.00",
                                                           "approver": "supervisor"}
    assert gestor1.get_plan_limits(1) == saved
    with pytest.raises(NotFound):
        gestor1.get_plan_limits(2)
    bad = {**LIMITS, "discount_bands": [{"thresholds": [{"up_to_pct": "30"},
                                                        {"up_to_pct": "10"}]}]}
    with pytest.raises(InvalidInput) as refused:
        admin.save_plan_limits(1, bad)
    assert "thresholds" in str(refused.value.fields["discount_bands"])
    with pytest.raises(InvalidInput) as refused:
        admin.save_plan_limits(1, {**LIMITS, "max_instalments": 0})
    assert "max_instalments" in refused.value.fields


def test_a_plan_outside_the_limits_waits_for_a_supervisor_who_approves_it(
        gestor1, admin, approver, as_user, engine):
    admin.save_plan_limits(1, LIMITS)
    inside = gestor1.log_activity(call(code="PP", promise=_plan("100.00", "200.00")))
    assert inside["promise"]["state"] == "pending" and inside["approval"] is None

    outside = gestor1.log_activity(call(code="CONV", promise=_plan("80", "100", "100", "100")))
    assert outside["promise"] is None
    approval = outside["approval"]
    assert approval["state"] == "pending" and approval["approver"] == "supervisor"
    assert approval["activity_id"] == outside["id"] and approval["channel"] == "agent"
    assert {r["field"] for r in approval["reasons"]} == {"promise.instalments"}
    assert outside["details"]["promise"]["needs_approval"] is True   # hashed with the entry
    assert scalar(engine, "SELECT count(*) FROM activities.promises") == 1
    assert scalar(engine, "SELECT promises_made FROM activities.productivity_daily "
                          "WHERE agent_id = :a", a=GESTOR1) == 1

    with pytest.raises(PermissionDenied):
        gestor1.list_approvals({})
    elsewhere = as_user(SUPERVISOR + 1, APPROVER_PERMS, (2,))
    assert elsewhere.list_approvals({})["items"] == []
    with pytest.raises(NotFound):
        elsewhere.decide_approval(approval["id"], {"decision": "approve"})
    (queued,) = approver.list_approvals({})["items"]
    assert queued["id"] == approval["id"]

    decided = approver.decide_approval(approval["id"], {"decision": "approve", "note": "Ok"})
    assert decided["state"] == "approved" and decided["decided_by"] == SUPERVISOR
    promise = gestor1.account_promises(ACC1[0])[0]
    assert promise["id"] == decided["promise_id"] and promise["amount"] == "380.00"
    assert promise["activity_id"] == outside["id"] and len(promise["instalments"]) == 4
    made = [m for m in outbox(engine, "promise_made") if m["promise_id"] == promise["id"]]
    assert made[0]["with_entry"] is False      # its entry was announced without it
    assert scalar(engine, "SELECT promises_made FROM activities.productivity_daily "
                          "WHERE agent_id = :a", a=GESTOR1) == 2
    with pytest.raises(Conflict):
        approver.decide_approval(approval["id"], {"decision": "reject", "note": "tarde"})
    assert approver.list_approvals({})["items"] == []
    assert [a["state"] for a in gestor1.account_approvals(ACC1[0])] == ["approved"]


def test_a_small_first_payment_or_a_long_plan_is_rejected_with_a_reason(
        gestor1, admin, approver, engine):
    admin.save_plan_limits(1, LIMITS)
    small = gestor1.log_activity(call(code="PP", promise=_plan("40", "300")))
    long = gestor1.log_activity(call(account_id=ACC1[1], code="PP",
                                     promise={"amount": "500", "due_date": (
                                         today() + timedelta(days=90)).isoformat()}))
    assert [r["field"] for r in small["approval"]["reasons"]] == ["promise.instalments.0.amount"]
    assert [r["field"] for r in long["approval"]["reasons"]] == ["promise.due_date"]
    with pytest.raises(InvalidInput) as refused:
        approver.decide_approval(small["approval"]["id"], {"decision": "reject"})
    assert "note" in refused.value.fields
    rejected = approver.decide_approval(small["approval"]["id"],
                                        {"decision": "reject", "note": "Primer pago muy bajo"})
    assert rejected["state"] == "rejected" and rejected["promise_id"] is None
    assert scalar(engine, "SELECT count(*) FROM activities.promises") == 0
    assert [a["id"] for a in approver.list_approvals({})["items"]] == [long["approval"]["id"]]
    assert approver.list_approvals({"state": "rejected"})["total"] == 1


def test_the_form_reads_the_limits_of_an_account_and_the_services_verdict_before_logging(
        gestor1, admin, as_user, limited, engine):
    """What the activity form shows before anything is sent: the limits as they apply to
    the account (its band by stage and days past due) and the verdict ``log_activity``
    would give - the same reasons - with nothing written."""
    admin.save_plan_limits(1, LIMITS)
    seen = gestor1.account_limits(ACC1[0])
    stage, days = sql(engine, "SELECT stage, days_past_due FROM portfolio.accounts "
                              "WHERE id = :a", a=ACC1[0])[0]
    assert (seen["stage"], seen["days_past_due"]) == (stage, days)
    assert seen["max_instalments"] == 3 and seen["max_plan_days"] == 60
    if stage == "delinquent" and days <= 90:
        assert (seen["free_pct"], seen["top_pct"]) == ("10.00", "30.00")
    with pytest.raises(NotFound):
        as_user(GESTOR1, GESTOR_PERMS, (2,)).account_limits(ACC1[0])

    within = gestor1.check_promise({"account_id": ACC1[0], "promise": _plan("100", "200")})
    assert within == {"within": True, "reasons": [], "approver": None}
    plan = _plan("80", "100", "100", "100")
    verdict = gestor1.check_promise({"account_id": ACC1[0], "promise": plan})
    assert verdict["within"] is False and verdict["approver"] == "supervisor"
    assert scalar(engine, "SELECT count(*) FROM activities.activities") == 0
    logged = gestor1.log_activity(call(code="CONV", promise=plan))
    assert logged["approval"]["reasons"] == verdict["reasons"]
    with pytest.raises(InvalidInput) as refused:
        gestor1.check_promise({"account_id": ACC1[0], "promise": {"amount": "-1"}})
    assert "promise" in refused.value.fields


def test_an_agents_settlement_above_the_free_discount_waits_for_the_supervisor(
        gestor1, admin, approver, engine):
    """The activity form's settlement: its lump sum computed from the balance, judged by
    the account's band as the portal's is - at once within the free discount, else an
    approval naming the level; refused above the band, or beside another promise."""
    admin.save_plan_limits(1, {**LIMITS, "discount_bands": [{"thresholds": [
        {"up_to_pct": "10"}, {"up_to_pct": "30", "approver": "supervisor"}]}]})
    balance = scalar(engine, "SELECT balance FROM portfolio.accounts WHERE id = :a", a=ACC1[0])
    pay_by = (today() + timedelta(days=3)).isoformat()
    verdict = gestor1.check_promise({"account_id": ACC1[0], "settlement": {
        "discount_pct": "25", "pay_by": pay_by}})
    assert verdict["within"] is False and verdict["approver"] == "supervisor"
    expected = (balance * Decimal("0.75")).quantize(Decimal("0.01"))
    assert verdict["settlement"]["amount"] == str(expected)

    for bad, where in (({"settlement": {"discount_pct": "31"}}, "discount_pct"),
                       ({"settlement": {"discount_pct": "5"},
                         "promise": {"amount": "10", "due_date": pay_by}}, None)):
        with pytest.raises(InvalidInput) as refused:
            gestor1.log_activity(call(code="PP", **bad))
        assert "settlement" in refused.value.fields
        if where:
            assert where in refused.value.fields["settlement"]
    asked = gestor1.log_activity(call(code="PP", settlement={"discount_pct": "25",
                                                             "pay_by": pay_by}))
    assert asked["promise"] is None
    assert asked["approval"]["kind"] == "settlement"
    assert asked["approval"]["approver"] == "supervisor"
    assert asked["approval"]["reasons"] == verdict["reasons"]
    assert asked["details"]["settlement"]["amount"] == str(expected)
    decided = approver.decide_approval(asked["approval"]["id"], {"decision": "approve"})
    assert scalar(engine, "SELECT amount FROM activities.promises WHERE id = :p",
                  p=decided["promise_id"]) == expected

    free = gestor1.log_activity(call(account_id=ACC1[1], code="PP",
                                     settlement={"discount_pct": "10"}))
    assert free["approval"] is None and free["promise"]["state"] == "pending"
    assert free["details"]["settlement"]["discount_pct"] == "10.00"


def test_a_supervisor_lists_only_the_requests_a_supervisor_may_decide(
        gestor1, admin, approver):
    """A discount above the supervisor's threshold waits for an administrator: it is not
    in the supervisor's queue (approving it could only be refused), it is in the
    administrator's; a supervisor's request is in both."""
    admin.save_plan_limits(1, {**LIMITS, "discount_bands": [{"thresholds": [
        {"up_to_pct": "10"}, {"up_to_pct": "20", "approver": "supervisor"},
        {"up_to_pct": "40", "approver": "administrator"}]}]})
    pay_by = (today() + timedelta(days=3)).isoformat()
    high = gestor1.log_activity(call(code="PP", settlement={"discount_pct": "35",
                                                            "pay_by": pay_by}))
    low = gestor1.log_activity(call(account_id=ACC1[1], code="PP",
                                    settlement={"discount_pct": "15", "pay_by": pay_by}))
    assert high["approval"]["approver"] == "administrator"
    assert [a["id"] for a in approver.list_approvals({})["items"]] == [low["approval"]["id"]]
    assert {a["id"] for a in admin.list_approvals({})["items"]} == {
        low["approval"]["id"], high["approval"]["id"]}
    with pytest.raises(PermissionDenied):
        approver.decide_approval(high["approval"]["id"], {"decision": "approve"})
