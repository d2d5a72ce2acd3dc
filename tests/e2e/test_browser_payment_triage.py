"""The "Pagos por asignar" screen in headless Chromium: a payment the bank notified under a
reference no account holds waits there; the supervisor assigns it to an account (credited
as a payments file would: the balance drops), and dismisses another with a note; a
collector has no such screen.

Shares the webhooks API module's world (the bank provider and its secret, an account).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from playwright.sync_api import expect

from .helpers import login
from .webhooks_world import RUN, post_payment, receiver, world  # noqa: F401 (fixtures)


def test_a_supervisor_assigns_and_dismisses_unmatched_payments(world, new_page, demo_users):
    now = datetime.now(timezone.utc).isoformat()
    lost = post_payment(world, {"payment_id": f"UI-{RUN}-1", "reference": "1234567890123409",
                                "amount": "12.34", "paid_at": now}).json()
    other = post_payment(world, {"payment_id": f"UI-{RUN}-2", "reference": "0000000000000098",
                                 "amount": "5.00", "paid_at": now}).json()
    assert lost["status"] == other["status"] == "unmatched"
    account = world["account"]
    balance = Decimal(world["admin"].ok("GET", f"/api/v1/accounts/{account}")["balance"])

    page = new_page()
    login(page, "supervisor", demo_users)
    page.goto("/pagos/por-asignar")
    row = page.locator(f'tr[data-notification-id="{lost["id"]}"]')
    expect(row).to_contain_text("12.34")
    row.locator('input[name="account_id"]').fill(str(account))
    with page.expect_navigation():
        row.locator(".assign-form button").click()
    expect(page.locator("#notice")).to_contain_text("abonado")
    expect(page.locator(f'tr[data-notification-id="{lost["id"]}"]')).to_have_count(0)
    assert Decimal(world["admin"].ok("GET", f"/api/v1/accounts/{account}")["balance"]) == \
        balance - Decimal("12.34")

    row = page.locator(f'tr[data-notification-id="{other["id"]}"]')
    row.locator('input[name="note"]').fill("Devuelto al banco")
    with page.expect_navigation():
        row.locator(".dismiss-form button").click()
    expect(page.locator("#notice")).to_contain_text("descartado")
    expect(page.locator(f'tr[data-notification-id="{other["id"]}"]')).to_have_count(0)

    collector = new_page()
    login(collector, "gestor1", demo_users)
    expect(collector.locator("#payment-triage-link")).to_have_count(0)
    answer = collector.goto("/pagos/por-asignar")
    assert answer.status == 403
