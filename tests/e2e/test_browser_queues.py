"""The collection queues' screens in headless Chromium: a supervisor builds a two-queue
strategy in the editor, sees a problem next to the queue it belongs to, simulates,
applies and freezes a queue on the board; a collector presses "Siguiente cuenta" and
lands on the debtor's 360° view; with nothing to work, a friendly empty state.

The queues service's projections are filled as for ``test_queues_api`` (``prepare_queues``
in ``helpers.py``); the strategy made here is named ``E2E filas …`` and removed at
the end.
"""
from __future__ import annotations

import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from .helpers import (INSTITUTION, PREFIX, Api, click_menu_link, login, prepare_queues,
                      release_all, remove_queue_leftovers, restore_contact_window, token,
                      wait_for)

RUN = secrets.token_hex(3)
STRATEGY = f"{PREFIX} {RUN} navegador"


@pytest.fixture(scope="module")
def world(stack, demo_users):
    prepared = prepare_queues(stack.base_url, demo_users)
    yield {**prepared, "password": demo_users, "base_url": stack.base_url}
    release_all()
    remove_queue_leftovers()
    restore_contact_window(stack.base_url, demo_users)


def htmx_settled(page: Page):
    """Waits until htmx has swapped and settled: a swapped-in control listens for its
    triggers only once settled, and a loaded machine can be slower than the next click."""
    page.wait_for_function(
        "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")


def whole(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def test_a_supervisor_builds_simulates_and_applies_a_strategy(world, new_page, screenshots):
    page = new_page()
    login(page, "supervisor", world["password"])
    click_menu_link(page, "#queues-link")
    expect(page.locator("h1")).to_have_text("Estrategias de cobranza")
    page.goto(f"/filas/estrategias?institucion={INSTITUTION}")
    page.click("#new-strategy")
    expect(page.locator("h1#strategy-title")).to_have_text("Nueva estrategia")

    page.fill("#strategy-name", STRATEGY)
    page.fill("#q-0-name", "Morosos graves")
    # the supervisor's only team comes chosen; leave it out to see the problem in place
    page.select_option("#q-0-team_id", "")
    page.click("#q-0-add-cond")
    expect(page.locator("#q-0-c-0-field")).to_be_visible()
    htmx_settled(page)
    # choosing the field refreshes the row (htmx): the operators of a number
    with page.expect_response(lambda r: r.request.method == "POST"
                              and "/filas/estrategias/nueva" in r.url):
        page.select_option("#q-0-c-0-field", "days_past_due")
    expect(page.locator("#q-0-c-0-value")).to_have_attribute("inputmode", "decimal")
    page.select_option("#q-0-c-0-op", "gt")
    expect(page.locator("#q-0-c-0-op")).to_have_value("gt")
    page.fill("#q-0-c-0-value", "60")
    page.click("#add-queue")
    expect(page.locator("#queue-1")).to_be_visible()
    page.fill("#q-1-name", "Resto")
    expect(page.locator("#q-1-takes-all")).to_be_visible()

    page.click("#save-strategy")
    expect(page.locator("#form-failure")).to_contain_text("Revise los campos marcados")
    expect(page.locator("#err-q-0-team_id")).to_have_text("Elija el equipo que trabaja esta fila.")
    expect(page.locator("#queue-0")).to_have_class(re.compile("has-problems"))
    expect(page.locator("#q-0-c-0-value")).to_have_value("60")     # nothing typed is lost
    page.screenshot(path=str(screenshots / "queues-editor.png"), full_page=True)
    page.select_option("#q-0-team_id", str(world["team_id"]))
    page.select_option("#q-1-team_id", str(world["team_id"]))

    with page.expect_navigation():
        page.click("#save-simulate")
    assert urlsplit(page.url).path.startswith("/filas/estrategias/")
    expect(page.locator("#strategy-title")).to_have_text(STRATEGY)
    expect(page.locator("[data-state=draft]")).to_be_visible()
    rows = page.locator("#simulation-table tbody tr")
    expect(rows).to_have_count(2)
    assert whole(page.locator("#sim-total").inner_text()) == world["facts"]   # "Resto" takes the rest
    assert whole(page.locator("#sim-unplaced").inner_text()) == 0
    graves_text = rows.nth(0).locator(".sim-accounts").inner_text()
    graves = whole(graves_text)
    assert 0 < graves < world["facts"]
    # "Simular" again, in place (htmx): the same preview
    page.evaluate("document.getElementById('simulation-result').remove()")
    page.click("#simulate")
    expect(page.locator("#simulation-table tbody tr").first.locator(".sim-accounts")) \
        .to_have_text(graves_text)

    page.click("#apply")
    with page.expect_navigation():
        page.click("#apply-confirm")
    expect(page.locator("#applied")).to_contain_text("Estrategia aplicada")
    expect(page.locator("#applied-counts tbody tr")).to_have_count(2)
    expect(page.locator("[data-state=active]")).to_be_visible()
    expect(page.locator("#readonly-note")).to_be_visible()           # active: not editable

    with page.expect_navigation():
        page.click("#to-board")
    board = page.locator("#board-table tbody tr")
    expect(board).to_have_count(2)
    assert whole(board.nth(0).locator(".board-accounts").inner_text()) == graves
    board.nth(0).locator("button.freeze-toggle").click()
    expect(board.nth(0).locator(".frozen-badge")).to_have_text("Congelada")
    expect(board.nth(0).locator("button.freeze-toggle")).to_have_text("Descongelar")
    page.screenshot(path=str(screenshots / "queues-board.png"), full_page=True)
    board.nth(0).locator("button.freeze-toggle").click()
    expect(board.nth(0).locator(".frozen-badge")).to_have_count(0)


def test_a_collector_presses_next_account_and_lands_on_the_debtor(world, new_page):
    release_all()
    gestor = Api(world["base_url"], token(world["base_url"], "gestor1", world["password"]))
    lease = gestor.ok("POST", "/api/v1/queues/next")
    # the portfolio learns who collects each account from the queues service's event
    wait_for(lambda: gestor.call("GET", f"/api/v1/debtors/{lease['debtor_id']}").status_code
             == 200, what="the portfolio to show gestor1 the debtor of their lease")

    page = new_page()
    login(page, "gestor1", world["password"])
    expect(page.locator("#home-next-account")).to_be_visible()
    with page.expect_navigation():
        page.click("#next-account")
    address = urlsplit(page.url)
    assert address.path == f"/deudores/{lease['debtor_id']}"
    assert parse_qs(address.query)["cuenta"] == [str(lease["account_id"])]
    expect(page.locator("h1")).not_to_have_text(re.compile("No encontrado|Error"))

    page.goto("/filas/mi-lista")
    expect(page.locator("#worklist-table tbody tr").first).to_be_visible()
    expect(page.locator("#worklist-table tbody tr").first).to_contain_text("Morosos graves")
    release_all()


def test_with_nothing_to_work_the_button_says_so(world, new_page):
    page = new_page()
    login(page, "supervisor", world["password"])     # works queues, in no team's
    with page.expect_navigation():
        page.click("#next-account")
    expect(page.locator("#no-next-account h1")).to_have_text("No hay cuentas por gestionar ahora")
    expect(page.locator("#to-worklist")).to_be_visible()
    expect(page.locator("#work-outlook .outlook-next")).to_be_visible()   # never a dead end

    page.goto("/idioma/en?next=/filas/mi-lista")
    expect(page.locator("#next-account")).to_have_text("Next account")
    expect(page.locator("h1")).to_have_text("My worklist")
