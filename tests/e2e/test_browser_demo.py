"""The first five minutes of each demo profile, in headless Chromium, on the demo as ``make
up`` leaves it (``recaudo seed`` and ``recaudo seed-live``: the ``demo_users`` fixture):
log in, see a home that is not empty, open the cartera, open a debtor with history (the
gestor's also has the demo's documents on its Documentos tab); the gestor also takes the next account of the demo strategy, logs a call with a promise, sees
it in the history, and the supervisor's live dashboard counts it. Every step is saved as a
screenshot at 1280 px and at 390 px (a phone) under ``var/test/screenshots/demo-*.png``.

The contact window of BANCOMER is opened all day for the gestor's steps (a test may run at
any hour) and put back after.
"""
from __future__ import annotations

import secrets
from datetime import date, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from documents import seed as documents_seed
from queues import seed as queues_seed
from recaudo_common import demo

from .helpers import (INSTITUTION, Api, login, release_all, restore_contact_window, sql, token,
                      wait_for)

WIDTHS = {"1280": {"width": 1280, "height": 900}, "390": {"width": 390, "height": 844}}
PROFILES = ("admin", "supervisor", "gestor1", "abogado", "cliente")
RUN = secrets.token_hex(3)


@pytest.fixture(scope="module")
def demo_world(stack, demo_users):
    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i", i=INSTITUTION)[0]
    # any hour, whatever the hour the suite runs at (no seeded jurisdiction: the
    # institution's window only, not a jurisdiction's calling hours)
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    sql("UPDATE queues.institution_rules SET contact_from = '00:00', contact_until = '23:59:59'"
        " WHERE institution_id = :i", i=INSTITUTION)
    release_all()
    # the demo strategies applied again (another suite may have applied its own since)
    sql("UPDATE queues.strategies SET state = 'draft' WHERE name = :n AND state = 'archived'",
        n=queues_seed.STRATEGY)
    supervisor = Api(stack.base_url, token(stack.base_url, "supervisor", demo_users))
    for (strategy_id,) in sql("SELECT id FROM queues.strategies WHERE name = :n AND state <> "
                              "'active'", n=queues_seed.STRATEGY):
        supervisor.ok("POST", f"/api/v1/strategies/{strategy_id}/apply")
    yield {"password": demo_users, "base_url": stack.base_url}
    release_all()
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)
    restore_contact_window(stack.base_url, demo_users)


def _debtor_with_history(username: str) -> int:
    """A debtor this demo user may read whose account has entries in the demo's past; for
    the gestor, one whose folder also holds the demo's documents (seed-live put them in the
    folders of the debtors with history the collector sees first)."""
    demo_document = ("EXISTS (SELECT 1 FROM documents.documents d WHERE d.debtor_id = "
                     "a.debtor_id AND d.name = ANY(:{}))")
    reach = {"gestor1": "a.assigned_agent_id = :me AND a.lawyer_id IS NULL AND "
                        + demo_document.format("pdfs") + " AND " + demo_document.format("images"),
             "abogado": "a.lawyer_id = :me",
             "cliente": f"a.institution_id = {demo.CLIENT_INSTITUTION_ID}"}.get(username, "true")
    rows = sql(f"SELECT a.debtor_id FROM portfolio.accounts a WHERE {reach} AND EXISTS "
               "(SELECT 1 FROM activities.activities x WHERE x.account_id = a.id) "
               "ORDER BY a.id LIMIT 1", me=demo.USER_IDS.get(username, 0),
               pdfs=[n for n in documents_seed.NAMES if n.endswith(".pdf")],
               images=[n for n in documents_seed.NAMES if n.endswith((".png", ".jpg"))])
    assert rows, f"the demo has no debtor with history for {username}"
    return rows[0][0]


def _shot(page: Page, folder, profile: str, step: str, width: str) -> None:
    _holds_up(page, width)
    page.screenshot(path=str(folder / f"demo-{profile}-{step}-{width}.png"), full_page=True)


def _holds_up(page: Page, width: str) -> None:
    """The screen holds up at this width: the page never scrolls sideways (a wide table
    scrolls inside its own box) and at 1280 px the menu is one line (the brand's height)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow} px at {width} px"
    if width == "1280":
        nav = page.locator("header nav").bounding_box()
        brand = page.locator("header nav .brand").bounding_box()
        assert nav["height"] < 2 * brand["height"] + 16, \
            f"the menu wraps at {width} px on {page.url}: {nav['height']} px high"
        first = page.locator("header nav > ul:last-child > li").first.bounding_box()
        assert brand["x"] + brand["width"] <= first["x"], f"the menu covers the brand on {page.url}"


def _thumb_sized(page: Page, selector: str) -> None:
    """A control a thumb can hit on a phone: at least 40 px high."""
    box = page.locator(selector).bounding_box()
    assert box and box["height"] >= 40, f"{selector} is {box} on a phone"


@pytest.mark.parametrize("width", tuple(WIDTHS))
@pytest.mark.parametrize("profile", PROFILES)
def test_the_first_five_minutes_of_each_demo_profile(demo_world, browser, stack, screenshots,
                                                     profile, width):
    context = browser.new_context(base_url=stack.base_url, viewport=WIDTHS[width])
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        login(page, profile, demo_world["password"])
        if profile == "cliente":
            page.goto("/portal")
            expect(page.locator("#kpi-accounts")).not_to_have_text("0")
        elif profile == "gestor1":
            expect(page.locator("#work-outlook")).to_be_visible()
            expect(page.locator("#outlook-waiting")).to_be_visible()   # the strategy's queues
        else:
            expect(page.locator("#welcome")).to_be_visible()
        _shot(page, screenshots, profile, "1-home", width)

        page.goto("/cartera")
        expect(page.locator("#results tbody tr").first).to_be_visible()
        _shot(page, screenshots, profile, "2-cartera", width)

        page.goto(f"/deudores/{_debtor_with_history(profile)}")
        page.click("#tab-gestiones")
        expect(page.locator("#history tbody tr").first).to_be_visible()
        _shot(page, screenshots, profile, "3-debtor-history", width)

        if profile == "gestor1":
            page.click("#tab-documentos")               # the demo's PDFs and images
            expect(page.locator("#documents tbody tr").first).to_be_visible()
            names = page.locator("#documents tbody tr td:first-child a").all_inner_texts()
            assert any(n.endswith(".pdf") for n in names), names
            assert any(n.endswith((".png", ".jpg")) for n in names), names
            _shot(page, screenshots, profile, "3b-debtor-documents", width)

        if profile == "gestor1":
            _gestor_works_the_next_account(page, screenshots, width)
    finally:
        context.close()


def _gestor_works_the_next_account(page: Page, screenshots, width: str) -> None:
    page.goto("/")
    if width == "390":
        _thumb_sized(page, "#home-next-account")
    with page.expect_navigation():
        page.click("#home-next-account")
    assert page.url.split("?")[0].rsplit("/", 2)[-2] == "deudores", page.url
    _shot(page, screenshots, "gestor1", "4-pulled", width)
    page.click("#tab-gestiones")                        # htmx swaps the tab in
    expect(page.locator("#panel-gestiones")).to_be_visible()
    form = page.locator("#activity-form")
    if not form.is_visible():
        page.click("#new-activity")
    expect(form).to_be_visible()
    page.select_option("#kind", "call")
    page.select_option("#result_code_id", label="PP · Promesa de pago")
    page.fill("#promise_amount", "900.00")
    page.fill("#promise_due_date", (date.today() + timedelta(days=5)).isoformat())
    description = f"Demo: promete pagar ({width} px, {RUN})"
    page.fill("#description", description)
    _shot(page, screenshots, "gestor1", "5-activity-form", width)
    if width == "390":
        for control in ("#kind", "#promise_amount", "#save-activity"):
            _thumb_sized(page, control)
    with page.expect_navigation():
        page.click("#save-activity")
    first = page.locator("#history tbody tr").first
    expect(first).to_contain_text(description)
    _shot(page, screenshots, "gestor1", "6-logged", width)

    supervisor = page.context.browser.new_context(base_url=page.url.split("/deudores")[0],
                                                  viewport=page.viewport_size)
    try:
        board = supervisor.new_page()
        login(board, "supervisor", demo_world_password())
        board.goto("/tableros/supervisor")
        expect(board.locator(f"#day-agents tr[data-agent='{demo.USER_IDS['gestor1']}']")).to_be_visible()
        # the demo's past has payments dated today (promises paid early): no bare $0.00
        expect(board.locator("#counter-recovered")).not_to_have_text("$0.00")
        _shot(board, screenshots, "supervisor", "7-live-dashboard", width)
    finally:
        supervisor.close()
    wait_for(lambda: sql("SELECT count(*) FROM activities.activities WHERE description = :d",
                         d=description)[0][0] == 1, what="the logged call")


def demo_world_password() -> str:
    return demo.DEMO_PASSWORD


def test_the_supervisor_finds_the_demo_scheduled_report_as_their_own(demo_world, stack):
    """``recaudo seed-live`` made it through the reports service as the supervisor: it is in
    their own list of scheduled reports, a weekly productivity report sent to them."""
    supervisor = Api(stack.base_url, token(stack.base_url, "supervisor", demo_world["password"]))
    schedules = supervisor.ok("GET", "/api/v1/report-schedules")
    assert [(s["report"], s["frequency"], s["recipients"]) for s in schedules] == [
        ("productivity", "weekly", ["supervisor@recaudo.example"])]


def test_every_demo_institution_has_recovery_and_resolved_disputes(demo_world, stack):
    """Right after ``make up`` no dashboard reads a false zero (issue 19): with the reports'
    default range (the month so far, a single day on the 1st) every demo institution has
    collected money in the recovery and champion-challenger reports - its payments were
    imported through its own payments layout - and resolved disputes; the supervisor's day
    has money recovered today."""
    admin = Api(stack.base_url, token(stack.base_url, "admin", demo_world["password"]))
    institutions = {i for i, _, _ in demo.INSTITUTIONS}
    recovery = admin.ok("GET", "/api/v1/reports/recovery?group_by=institution")["rows"]
    # (other suites' institutions may have collected too)
    assert {r["institution_id"] for r in recovery if Decimal(r["collected"]) > 0} \
        >= institutions, recovery
    arms = admin.ok("GET", "/api/v1/reports/champion-challenger")["rows"]
    assert {r["institution_id"] for r in arms if Decimal(r["collected"]) > 0} \
        >= institutions, arms
    disputes = admin.ok("GET", "/api/v1/reports/disputes")["rows"]
    assert {r["institution_id"] for r in disputes if r["resolved"] > 0} >= institutions, disputes
    assert {r["institution_id"] for r in disputes if r["open"] > 0} >= institutions, disputes
    outcomes = {o: sum(r[o] for r in disputes)
                for o in ("confirmed_debt", "corrected_balance", "cancelled")}
    assert all(outcomes.values()), outcomes
    supervisor = Api(stack.base_url, token(stack.base_url, "supervisor", demo_world["password"]))
    day = supervisor.ok("GET", "/api/v1/dashboards/supervisor")
    assert Decimal(day["totals"]["amount_recovered"]) > 0, day["totals"]
