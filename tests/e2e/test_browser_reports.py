"""Reports and dashboards in headless Chromium.

The live counter: the supervisor opens "Día del supervisor"; gestor1 logs a note through
the API on one of their accounts; the number of activities on the open page goes up by
one without a reload (Server-Sent Events from the activities service's events).

The creditor portal: the demo Cliente (institution 1, BANCOMER) sees its own portal, its
accounts only, a report filtered to another institution answers the "not found" page,
and a debtor of institution 2 is not found either.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests
from playwright.sync_api import expect
from sqlalchemy import create_engine, text

from recaudo_common.config import settings

from .helpers import click_menu_link, login, token

RUN = secrets.token_hex(3)


def _accounts() -> dict:
    engine = create_engine(settings().database_url)
    with engine.connect() as conn:
        def one(sql, **params):
            return conn.execute(text(sql), params).first()
        gestor1 = one("SELECT id FROM auth.users WHERE username = 'gestor1'")[0]
        mine = one("SELECT id FROM portfolio.accounts WHERE institution_id = 1 AND "
                   "assigned_agent_id = :g AND lawyer_id IS NULL ORDER BY id LIMIT 1", g=gestor1)
        other = one("SELECT debtor_id FROM portfolio.accounts WHERE institution_id = 2 "
                    "ORDER BY id LIMIT 1")
    engine.dispose()
    return {"gestor1_account": mine[0], "i2_debtor": other[0]}


def _whole(text_: str) -> int:
    return int(re.sub(r"\D", "", text_) or 0)


def test_the_supervisors_counter_goes_up_when_an_activity_is_logged(stack, demo_users,
                                                                    new_page, screenshots):
    accounts = _accounts()
    gestor = token(stack.base_url, "gestor1", demo_users)

    page = new_page()
    login(page, "supervisor", demo_users)
    click_menu_link(page, "#reports-link")
    with page.expect_navigation():
        page.click("#link-supervisor")
    counter = page.locator("#counter-activities")
    expect(page.locator("#live-status")).to_have_attribute("data-live", "on", timeout=15_000)
    before = _whole(counter.inner_text())
    page.evaluate("window.__sameDocument = true")

    response = requests.post(stack.base_url + "/api/v1/activities", headers={
        "Authorization": f"Bearer {gestor}", "Idempotency-Key": f"live-{RUN}"}, json={
        "account_id": accounts["gestor1_account"], "kind": "note",
        "started_at": datetime.now(timezone.utc).isoformat(),
        "description": f"Nota para el tablero en vivo ({RUN})"}, timeout=30)
    assert response.status_code == 201, response.text

    page.wait_for_function(
        "n => parseInt(document.querySelector('#counter-activities').textContent"
        ".replace(/\\D/g, ''), 10) === n", arg=before + 1, timeout=15_000)
    assert page.evaluate("window.__sameDocument === true")    # no reload
    page.screenshot(path=str(screenshots / "supervisor-live.png"), full_page=True)


def test_the_creditor_portal_shows_only_its_institution(stack, demo_users, new_page,
                                                        screenshots):
    accounts = _accounts()
    page = new_page()
    login(page, "cliente", demo_users)
    # the creditor lands on their portal (issue 18: on "/"), and "/" takes them there too
    assert urlsplit(page.url).path == "/portal"
    expect(page.locator("#overview-title")).to_contain_text("Portal de")
    page.goto("/")
    assert urlsplit(page.url).path == "/portal"
    page.goto("/portal")
    expect(page.locator("#overview-title")).to_contain_text("Portal de")
    expect(page.locator("#overview-filters")).to_have_count(0)      # one institution only
    page.screenshot(path=str(screenshots / "creditor-portal.png"), full_page=True)

    page.click("#portal-accounts")
    rows = page.locator("#results tbody tr")
    expect(rows.first).to_be_visible()
    institutions = page.locator("#results tbody tr td.institution")
    if institutions.count():
        assert set(institutions.all_inner_texts()) == {"BANCOMER"}

    answer = page.goto("/reportes/productividad?institution_id=2")
    assert answer.status == 404
    answer = page.goto(f"/deudores/{accounts['i2_debtor']}")
    assert answer.status == 404
    answer = page.goto("/tableros/institucion?institution_id=2")
    assert answer.status == 404

    answer = page.goto("/reportes/productividad?date_from=2024-03-01&date_to=2024-02-01")
    assert answer.status == 422
    expect(page.locator("#err-date_to")).to_contain_text("anterior")
    answer = page.goto("/reportes/antiguedad")
    assert answer.status == 200
    expect(page.locator("#institution_id")).to_have_count(0)         # nothing to choose


def test_an_administrator_takes_todays_aging_snapshot_now(stack, demo_users, new_page):
    """The button of the institution overview and its API: today's snapshot (the
    institution's today, in its zone) taken now; the supervisor sees no button."""
    from zoneinfo import ZoneInfo

    engine = create_engine(settings().database_url)
    with engine.begin() as conn:
        zone = conn.execute(text("SELECT time_zone FROM portfolio.institutions WHERE id = 2")).scalar()
        for table in ("aging_snapshots", "aging_daily"):    # the snapshot and its rollup
            conn.execute(text(f"DELETE FROM portfolio.{table} WHERE institution_id = 2 AND "
                              "snapshot_date = :d"), {"d": datetime.now(ZoneInfo(zone)).date()})
    try:
        page = new_page()
        login(page, "admin", demo_users)
        page.goto("/tableros/institucion?institution_id=2")
        # without today's snapshot the accounts say from which day they are, or that none
        # was taken yet: never a bare 0
        expect(page.locator("#kpi-accounts-as-of")).to_be_visible()
        expect(page.locator("#kpi-accounts")).not_to_have_text("0")
        with page.expect_navigation():
            page.click("#take-snapshot")
        expect(page.locator("#snapshot-taken")).to_be_visible()
        expect(page.locator("#kpi-accounts-as-of")).to_have_count(0)        # today's
        with engine.connect() as conn:
            taken = conn.execute(text(
                "SELECT count(*) FROM portfolio.aging_snapshots WHERE institution_id = 2 AND "
                "snapshot_date = :d"), {"d": datetime.now(ZoneInfo(zone)).date()}).scalar()
            accounts = conn.execute(text(
                "SELECT count(*) FROM portfolio.accounts WHERE institution_id = 2")).scalar()
        assert taken == accounts > 0

        access = token(stack.base_url, "admin", demo_users)
        answer = requests.post(stack.base_url + "/api/v1/institutions/2/aging-snapshot",
                               headers={"Authorization": f"Bearer {access}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"institution_id": 2, "accounts": accounts,
                                 "snapshot_date": datetime.now(ZoneInfo(zone)).date().isoformat()}

        supervisor = new_page()
        login(supervisor, "supervisor", demo_users)
        supervisor.goto("/tableros/institucion?institution_id=2")
        expect(supervisor.locator("#take-snapshot")).to_have_count(0)
    finally:
        engine.dispose()
