"""The contact log in headless Chromium: gestor1 takes the next account from the queue
("Siguiente cuenta"), opens the "Gestiones" tab of the debtor's 360° view, chooses
"Promesa de pago" (the promise fields appear), is told next to the field that the
promise date has passed (nothing typed is lost), fixes it, saves, and sees the call at
the top of the history grid, under their name, and the promise in the "Promesas" tab.

The queues are prepared as for ``test_queues_api`` (``helpers.prepare_queues``), with a
one-queue strategy of institution 1 named ``E2E filas …`` that takes every account,
removed at the end with the collectors' leases.
"""
from __future__ import annotations

import re
import secrets
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from .helpers import (INSTITUTION, PREFIX, Api, login, prepare_queues, queue, release_all,
                      remove_queue_leftovers, restore_contact_window, sql, token, wait_for)

RUN = secrets.token_hex(3)


@pytest.fixture(scope="module")
def world(stack, demo_users):
    prepared = prepare_queues(stack.base_url, demo_users)
    # the call is logged now: the contact policy's window (in the portfolio) open all day
    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i",
                 i=INSTITUTION)[0]
    # any hour (no seeded jurisdiction: the default policy, the institution's window only)
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    supervisor = Api(stack.base_url, token(stack.base_url, "supervisor", demo_users))
    strategy = supervisor.ok("POST", "/api/v1/strategies", {
        "institution_id": INSTITUTION, "name": f"{PREFIX} {RUN} gestiones",
        "queues": [queue("Todas", {"all": []}, prepared["team_id"])]}, status=201)
    supervisor.ok("POST", f"/api/v1/strategies/{strategy['id']}/apply")
    release_all()
    yield {**prepared, "password": demo_users, "base_url": stack.base_url}
    release_all()
    remove_queue_leftovers()
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)
    restore_contact_window(stack.base_url, demo_users)


def test_a_collector_takes_the_next_account_and_logs_a_call_with_a_promise(world, new_page,
                                                                           screenshots):
    gestor = Api(world["base_url"], token(world["base_url"], "gestor1", world["password"]))
    lease = gestor.ok("POST", "/api/v1/queues/next")
    # the portfolio learns who collects each account from the queues service's event
    wait_for(lambda: gestor.call("GET", f"/api/v1/debtors/{lease['debtor_id']}").status_code
             == 200, what="the portfolio to show gestor1 the debtor of their lease")

    page = new_page()
    login(page, "gestor1", world["password"])
    with page.expect_navigation():
        page.click("#next-account")                     # the lease just taken
    address = urlsplit(page.url)
    assert address.path == f"/deudores/{lease['debtor_id']}"
    assert parse_qs(address.query)["cuenta"] == [str(lease["account_id"])]

    page.click("#tab-gestiones")                        # htmx swaps the tab in
    expect(page.locator("#panel-gestiones")).to_be_visible()
    form = page.locator("#activity-form")
    if not form.is_visible():
        page.click("#new-activity")
    expect(form).to_be_visible()
    expect(page.locator("#activity-clock")).not_to_have_text("0:00", timeout=5_000)
    account_id = form.locator("input[name=account_id]").get_attribute("value")

    page.select_option("#kind", "call")
    phones = page.locator("#phone option:not([disabled])")
    if phones.count() > 1:
        page.select_option("#phone", phones.nth(1).get_attribute("value"))
    expect(page.locator("#promise-fields")).to_be_hidden()
    page.select_option("#result_code_id", label="PP · Promesa de pago")
    expect(page.locator("#promise-fields")).to_be_visible()
    expect(page.locator("#callback-fields")).to_be_hidden()
    page.fill("#promise_amount", "1,250.50")
    page.fill("#promise_due_date", (date.today() - timedelta(days=2)).isoformat())
    description = f"Promete pagar en una semana ({RUN})"
    page.fill("#description", description)

    page.click("#save-activity")
    expect(page.locator("#err-promise_due_date")).to_have_text(re.compile("ya pasó"))
    expect(page.locator("#description")).to_have_value(description)   # nothing lost
    expect(page.locator("#promise_amount")).to_have_value("1,250.50")
    expect(page.locator("#promise-fields")).to_be_visible()
    page.screenshot(path=str(screenshots / "activity-form-refused.png"), full_page=True)

    page.fill("#promise_due_date", (date.today() + timedelta(days=7)).isoformat())
    with page.expect_navigation():
        page.click("#save-activity")
    expect(page.locator("#notice")).to_have_text("Gestión registrada.")
    first = page.locator("#history tbody tr").first
    expect(first).to_contain_text(description)
    expect(first).to_contain_text("Promesa de pago")
    expect(first).to_contain_text("Llamada")
    expect(first).to_contain_text("$1,250.50")
    # the collector by name (asked of the auth service), not by user id
    expect(first).to_contain_text(gestor.ok("GET", "/api/v1/auth/me")["display_name"])
    page.screenshot(path=str(screenshots / "activity-history.png"), full_page=True)

    page.click("#tab-promesas")
    expect(page.locator("#promises tbody tr").first).to_contain_text("$1,250.50")
    expect(page.locator("#promises tbody tr").first).to_contain_text("Pendiente")

    # the same entry, once, through the API; logging ended the lease
    history = gestor.ok("GET", f"/api/v1/accounts/{account_id}/activities")
    assert [i["description"] for i in history["items"]].count(description) == 1
    # ...and counts for the queue that served it, though the page went through a redirect
    # and a tab change (issue 18: it was counted under queue 0)
    (entry,) = [i for i in history["items"] if i["description"] == description]
    assert entry["queue_id"] == lease["queue_id"]
    assert gestor.call("POST", f"/api/v1/queues/release/{lease['account_id']}").status_code \
        in (204, 404)


def test_a_callback_delegated_to_a_colleague_opens_the_debtor_for_them(world, new_page):
    """Issue 18: the delegate opened the debtor from their agenda and got 404 (the account
    stays assigned to the first collector). Now the pending callback opens it to them."""
    base, password = world["base_url"], world["password"]
    gestor1 = Api(base, token(base, "gestor1", password))
    gestor2 = Api(base, token(base, "gestor2", password))
    supervisor = Api(base, token(base, "supervisor", password))
    gestor1_id = sql("SELECT id FROM auth.users WHERE username = 'gestor1'")[0][0]
    gestor2_id = sql("SELECT id FROM auth.users WHERE username = 'gestor2'")[0][0]
    account_id, debtor_id = sql(
        "SELECT id, debtor_id FROM portfolio.accounts WHERE institution_id = 1 AND "
        "assigned_agent_id = :a ORDER BY id LIMIT 1", a=gestor1_id)[0]
    assert gestor2.call("GET", f"/api/v1/debtors/{debtor_id}").status_code == 404
    due = (datetime.now(timezone.utc) + timedelta(hours=5)).replace(microsecond=0)
    item = gestor1.ok("POST", "/api/v1/agenda", {
        "account_id": account_id, "kind": "callback", "due_at": due.isoformat(),
        "note": f"Llamar de nuevo ({RUN})"}, status=201)
    try:
        supervisor.ok("POST", f"/api/v1/agenda/{item['id']}/delegate", {"agent_id": gestor2_id})
        wait_for(lambda: gestor2.call("GET", f"/api/v1/debtors/{debtor_id}").status_code == 200,
                 what="the delegate to read the debtor of their callback")

        page = new_page()
        login(page, "gestor2", password)
        page.goto(f"/agenda?fecha={due.astimezone(ZoneInfo('America/Mexico_City')).date()}")
        # the demo's own callbacks are on the agenda too: the link to this account exactly
        link = page.locator("td > a").filter(has_text=re.compile(rf"^{account_id}$")).first
        with page.expect_navigation():
            link.click()
        expect(page.locator("#tab-gestiones")).to_have_attribute("aria-current", "page")
        expect(page.locator("#activity-form input[name=account_id]")).to_have_value(
            str(account_id))
    finally:
        done = gestor2.call("POST", f"/api/v1/agenda/{item['id']}/done")
        assert done.status_code in (200, 409)
    wait_for(lambda: gestor2.call("GET", f"/api/v1/debtors/{debtor_id}").status_code == 404,
             what="the done callback to close the debtor again")


def test_a_supervisor_checks_the_log_of_their_teams_account(world, new_page):
    """Issue 18: the hash-chain check was admin-only; a supervisor answers for their
    team's logs (here an account of gestor1, their agent)."""
    base, password = world["base_url"], world["password"]
    supervisor = Api(base, token(base, "supervisor", password))
    gestor1_id = sql("SELECT id FROM auth.users WHERE username = 'gestor1'")[0][0]
    account_id, debtor_id = sql(
        "SELECT id, debtor_id FROM portfolio.accounts WHERE institution_id = 1 AND "
        "assigned_agent_id = :a ORDER BY id DESC LIMIT 1", a=gestor1_id)[0]
    supervisor.ok("POST", "/api/v1/activities", {
        "account_id": account_id, "kind": "note", "description": f"Revisión ({RUN})",
        "started_at": datetime.now(timezone.utc).isoformat()}, status=201)

    page = new_page()
    login(page, "supervisor", password)
    page.goto(f"/deudores/{debtor_id}?tab=gestiones&cuenta={account_id}")
    page.click("#verify-chain")
    expect(page.locator("#chain-ok")).to_be_visible()
