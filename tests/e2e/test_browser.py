"""The web UI in headless Chromium: Spanish first, English on request, usable on a phone.

Debian's chromium driven by Playwright's sync API (``playwright install`` cannot
download here; docs/architecture.md §7); `deploy/bootstrap.sh --test` installs it.
"""
from __future__ import annotations

from playwright.sync_api import Page, expect

from recaudo_common.config import SERVICES

from .helpers import PHONE, overflow, watch_errors


def status_rows(page: Page):
    rows = page.locator("#status table.status tbody tr")
    expect(rows).to_have_count(len(SERVICES))
    return rows


def test_home_is_spanish_and_shows_every_service(page, screenshots):
    errors = watch_errors(page)
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1#welcome")).to_have_text("Bienvenido a Recaudo")
    rows = status_rows(page)  # loaded by htmx after the page
    names = [rows.nth(i).locator("td").first.inner_text().strip() for i in range(len(SERVICES))]
    assert names == list(SERVICES)
    for i in range(len(SERVICES)):
        expect(rows.nth(i)).to_have_class("ok")
        expect(rows.nth(i).locator("td").nth(1)).to_have_text("En línea")
    page.screenshot(path=str(screenshots / "home.png"), full_page=True)
    assert errors == []


def test_language_menu_switches_to_english_and_back(page):
    errors = watch_errors(page)
    page.goto("/")
    menu = page.locator("nav details.dropdown")
    menu.locator("summary").click()
    english = page.locator("#lang-en")
    expect(english).to_be_visible()
    with page.expect_navigation():
        english.click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1#welcome")).to_have_text("Welcome to Recaudo")
    expect(page.locator("nav details.dropdown summary")).to_have_text("English")
    rows = status_rows(page)
    expect(rows.first.locator("td").nth(1)).to_have_text("Online")

    # the choice is remembered (cookie) on the next visit
    page.goto("/")
    expect(page.locator("h1#welcome")).to_have_text("Welcome to Recaudo")

    page.locator("nav details.dropdown summary").click()
    with page.expect_navigation():
        page.locator("#lang-es").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("h1#welcome")).to_have_text("Bienvenido a Recaudo")
    assert errors == []


def test_phone_viewport_has_no_horizontal_overflow(browser, stack, screenshots):
    context = browser.new_context(base_url=stack.base_url, viewport=PHONE, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    try:
        page = context.new_page()
        page.goto("/")
        status_rows(page)
        nav = page.locator("header nav")
        expect(nav).to_be_visible()
        box = nav.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        result = overflow(page)
        assert result["scrollWidth"] <= result["innerWidth"], result
        page.screenshot(path=str(screenshots / "home-phone.png"))

        # the open language menu stays on screen too
        page.locator("nav details.dropdown summary").click()
        expect(page.locator("#lang-en")).to_be_visible()
        page.wait_for_function(  # Pico fades the menu in (a function: the CSP forbids eval)
            "() => getComputedStyle(document.querySelector('#lang-en').closest('ul')).opacity"
            " === '1'")
        menu = page.locator("#lang-en").locator("xpath=ancestor::ul[1]").bounding_box()
        assert menu["x"] >= 0 and menu["x"] + menu["width"] <= PHONE["width"], menu
        result = overflow(page)
        assert result["scrollWidth"] <= result["innerWidth"], result
        page.screenshot(path=str(screenshots / "home-phone-menu.png"))
    finally:
        context.close()
