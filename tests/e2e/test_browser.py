"""The web UI in headless Chromium: Spanish first, English on request, usable on a phone.

Debian's chromium driven by Playwright's sync API (``playwright install`` cannot
download here; docs/architecture.md §7); `deploy/bootstrap.sh --test` installs it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from recaudo_common.config import SERVICES

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: deploy/bootstrap.sh --test installs it "
                    "(apt-get install chromium)", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, stack):
    """A fresh browser profile (no language cookie yet) on the test stack."""
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def watch_errors(page: Page) -> list[str]:
    """Script errors, console errors and failed requests of ``page`` from now on."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"script: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}")
            if r.status >= 400 else None)
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url} {r.failure}")
            if "ERR_ABORTED" not in (r.failure or "") else None)  # a navigation cancelled it
    return errors


@pytest.fixture()
def screenshots(stack) -> Path:
    folder = stack.var_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def click_menu_link(page: Page, link: str) -> None:
    """Clicks a link of the main menu (``#reports-link``…), opening first the dropdown
    (Reportes, Administración) that holds it, as a person would."""
    menu = page.locator(f"header nav details:has({link})")
    if menu.count() and not page.locator(link).is_visible():
        menu.locator("summary").click()
    page.click(link)


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


def _overflow(page: Page) -> dict:
    return page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
        wide: [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                      + (e.className && typeof e.className === 'string' ? '.' + e.className : ''))
            .slice(0, 10),
    })""")


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
        result = _overflow(page)
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
        result = _overflow(page)
        assert result["scrollWidth"] <= result["innerWidth"], result
        page.screenshot(path=str(screenshots / "home-phone-menu.png"))
    finally:
        context.close()
