"""The institution's limits in the activity form, in headless Chromium: gestor1 opens the
"Gestiones" tab of a debtor of theirs and sees, before logging anything, the limits that
apply to the account (payments, first payment, length, the discount band of its stage and
days past due and who approves above it); as the promise is typed the activities service
says whether it is inside them or will wait for a supervisor - before anything is sent
(nothing is logged meanwhile); a plan of four payments logged from the form still goes to
the approval queue.

Institution 1's limits and contact window are put back after.
"""
from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from recaudo_common.demo import USER_IDS

from .helpers import INSTITUTION, Api, login, restore_contact_window, sql, token

RUN = secrets.token_hex(3)
LIMITS = {"max_instalments": 3, "min_first_payment": "50.00", "min_first_payment_pct": "10",
          "max_plan_days": 90, "offer_expiry_days": 7, "discount_bands": [
              {"stage": None, "dpd_from": 0, "dpd_to": None, "thresholds": [
                  {"up_to_pct": "15", "approver": None},
                  {"up_to_pct": "40", "approver": "supervisor"}]}]}


@pytest.fixture(scope="module")
def world(stack, demo_users):
    admin = Api(stack.base_url, token(stack.base_url, "admin", demo_users))
    before = admin.ok("GET", f"/api/v1/institutions/{INSTITUTION}/plan-limits")
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/plan-limits", LIMITS)
    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i", i=INSTITUTION)[0]
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    # the last of gestor1's accounts with one account per debtor (the portal's tests take
    # the first ones)
    account_id, debtor_id = sql(
        "SELECT a.id, a.debtor_id FROM portfolio.accounts a WHERE a.institution_id = :i "
        "AND a.assigned_agent_id = :g AND a.lawyer_id IS NULL AND a.balance > 1000 AND "
        "(SELECT count(*) FROM portfolio.accounts b WHERE b.debtor_id = a.debtor_id) = 1 "
        "ORDER BY a.id DESC LIMIT 1", i=INSTITUTION, g=USER_IDS["gestor1"])[0]
    yield {"account": account_id, "debtor": debtor_id, "password": demo_users,
           "base_url": stack.base_url,
           "supervisor": Api(stack.base_url, token(stack.base_url, "supervisor", demo_users))}
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)
    restore_contact_window(stack.base_url, demo_users)
    admin.ok("PUT", f"/api/v1/institutions/{INSTITUTION}/plan-limits",
             {k: before[k] for k in LIMITS})


def _logged() -> int:
    return sql("SELECT count(*) FROM activities.activities WHERE description LIKE :d",
               d=f"%{RUN}%")[0][0]


def test_the_form_shows_the_limits_and_tells_before_sending_what_needs_approval(
        world, new_page, screenshots):
    page = new_page()
    login(page, "gestor1", world["password"])
    page.goto(f"/deudores/{world['debtor']}?tab=gestiones&cuenta={world['account']}")
    expect(page.locator("#panel-gestiones")).to_be_visible()
    form = page.locator("#activity-form")
    if not form.is_visible():
        page.click("#new-activity")
    page.select_option("#kind", "call")
    page.select_option("#result_code_id", label="PP · Promesa de pago")
    limits = page.locator("#promise-limits")
    expect(limits).to_be_visible()
    expect(limits).to_contain_text("hasta 3 pagos")
    expect(limits).to_contain_text("$50.00")
    expect(limits).to_contain_text("plan de hasta 90 días")
    days = sql("SELECT days_past_due FROM portfolio.accounts WHERE id = :a",
               a=world["account"])[0][0]
    band = page.locator("#discount-band")
    expect(band).to_contain_text(f"{days} días de atraso")
    expect(band).to_contain_text("hasta 15.00%: sin aprobación")
    expect(band).to_contain_text("hasta 40.00%: aprueba un supervisor")

    day = date.today()
    page.fill("#promise_due_date", (day + timedelta(days=5)).isoformat())
    page.fill("#promise_amount", "20")                       # under the 50.00 minimum
    verdict = page.locator("#promise-needs-approval")
    expect(verdict).to_contain_text("esperará la aprobación de un supervisor")
    expect(verdict).to_contain_text("El primer pago mínimo es 50.00")
    page.fill("#promise_amount", "500")
    expect(page.locator("#promise-within")).to_be_visible()
    expect(page.locator("#promise-needs-approval")).to_have_count(0)

    # a plan of four payments: one more than the limit
    page.fill("#promise_amount", "")
    page.fill("#promise_due_date", "")
    page.click("#plan-rows summary")
    for n in range(4):
        page.fill(f"#plan_due_date_{n}", (day + timedelta(days=5 + 10 * n)).isoformat())
        page.fill(f"#plan_amount_{n}", "300")
    expect(page.locator("#promise-needs-approval")).to_contain_text("Más de 3 parcialidades")
    page.screenshot(path=str(screenshots / "activity-form-limits.png"), full_page=True)
    assert _logged() == 0                                    # judged, nothing written

    page.fill("#description", f"Propone cuatro pagos ({RUN})")
    with page.expect_navigation():
        page.click("#save-activity")
    expect(page.locator("#notice")).to_contain_text("espera la aprobación de un supervisor")
    ((activity_id,),) = sql("SELECT id FROM activities.activities WHERE description = :d",
                            d=f"Propone cuatro pagos ({RUN})")
    queue = world["supervisor"].ok("GET", "/api/v1/approvals?per_page=100")
    (asked,) = [a for a in queue["items"] if a["activity_id"] == activity_id]
    assert Decimal(asked["terms"]["amount"]) == 1200
    assert asked["channel"] == "agent" and len(asked["terms"]["instalments"]) == 4
    world["supervisor"].ok("POST", f"/api/v1/approvals/{asked['id']}/decision",
                           {"decision": "reject", "note": f"Prueba {RUN}"})


def test_a_settlement_typed_in_the_form_shows_its_sum_and_its_approver_before_sending(
        world, new_page):
    page = new_page()
    login(page, "gestor1", world["password"])
    page.goto(f"/deudores/{world['debtor']}?tab=gestiones&cuenta={world['account']}")
    form = page.locator("#activity-form")
    if not form.is_visible():
        page.click("#new-activity")
    page.select_option("#kind", "call")
    page.select_option("#result_code_id", label="PP · Promesa de pago")
    balance = sql("SELECT balance FROM portfolio.accounts WHERE id = :a",
                  a=world["account"])[0][0]
    page.fill("#settlement_discount_pct", "25")
    expect(page.locator("#settlement-terms")).to_contain_text(f"{balance * 3 / 4:,.2f}")
    expect(page.locator("#promise-needs-approval")).to_contain_text("un supervisor")
    page.fill("#settlement_discount_pct", "10")
    expect(page.locator("#promise-within")).to_be_visible()
    page.fill("#settlement_discount_pct", "50")
    expect(page.locator("#promise-incomplete")).to_contain_text("40.00%")
