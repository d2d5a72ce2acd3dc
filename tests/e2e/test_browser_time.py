"""One rule for time, swept through the pages in headless Chromium: a user whose zone is
far from UTC (Pacific/Kiritimati, UTC+14) sets it in "Mi cuenta" and then no page prints
a raw UTC or ISO timestamp; the times shown are in that zone; the anonymous holder of a
share link reads its expiry in the institution's zone, not in UTC.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from babel.dates import format_datetime
from playwright.sync_api import expect

from .helpers import login, sql

RUN = secrets.token_hex(3)
FAR = "Pacific/Kiritimati"
HOME = ZoneInfo("America/Mexico_City")
#: what a raw timestamp looks like printed: ISO text, an offset, "UTC"
RAW_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|[+-]00:00|\bUTC\b")
#: the pages that print times (with a debtor's tabs added by the test)
PAGES = ["/", "/cuenta", "/admin/usuarios", "/admin/llaves", "/admin/bitacora",
         "/importaciones", "/filas/", "/filas/estrategias", "/filas/mi-lista", "/campanas/",
         "/agenda", "/productividad", "/reportes/programados", "/correo", "/correo/buzones",
         "/documentos/compartidos", "/tableros/supervisor"]
DEBTOR_TABS = ["gestiones", "promesas", "aclaraciones", "documentos", "correo", "contrato",
               "movimientos", "notas", "contacto", "domicilio"]


@pytest.fixture(scope="module")
def admin_api(stack, demo_users) -> requests.Session:
    http = requests.Session()
    token = http.post(stack.url("/api/v1/auth/token"), timeout=30, json={
        "username": "admin", "password": demo_users}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture(scope="module")
def far_user(stack, admin_api, demo_users):
    """An administrator of every institution with no zone of their own (yet)."""
    admin = next(u for u in admin_api.get(stack.url("/api/v1/users"), timeout=30,
                                          params={"search": "admin"}).json()["items"]
                 if u["username"] == "admin")
    username = f"lejos-{RUN}"
    created = admin_api.post(stack.url("/api/v1/users"), timeout=30, json={
        "username": username, "display_name": "Lejos", "password": f"{demo_users}-{RUN}x",
        "profile_id": admin["profile_id"], "all_institutions": True})
    assert created.status_code == 201, created.text
    yield {**created.json(), "password": f"{demo_users}-{RUN}x"}
    sql("UPDATE auth.users SET active = false, username = :n WHERE id = :u",
        n=f"gone-{RUN}", u=created.json()["id"])


@pytest.fixture(scope="module")
def debtor_id(stack, demo_users):
    return sql("SELECT debtor_id FROM portfolio.accounts WHERE institution_id = 1 "
               "ORDER BY id LIMIT 1")[0][0]


def _text(page) -> str:
    return page.locator("body").inner_text()


def test_a_user_far_from_utc_sees_no_utc_time_on_any_page(far_user, debtor_id, new_page):
    page = new_page()
    login(page, far_user["username"], far_user["password"])
    page.goto("/cuenta")
    page.fill("#time_zone", FAR)
    with page.expect_navigation():
        page.click("form:has(#time_zone) button[type=submit]")
    expect(page.locator("#time_zone")).to_have_value(FAR)

    # the times shown are in the user's zone: their own creation, on their user page
    created = datetime.fromisoformat(far_user["created_at"])
    page.goto(f"/admin/usuarios/{far_user['id']}")
    assert format_datetime(created.astimezone(ZoneInfo(FAR)), "short", locale="es") \
        in _text(page)

    pages = PAGES + [f"/deudores/{debtor_id}?tab={tab}" for tab in DEBTOR_TABS]
    printed = {}
    for path in pages:
        response = page.goto(path)
        assert response.status < 400, f"{path}: {response.status}"
        found = RAW_MOMENT.findall(_text(page))
        if found:
            printed[path] = found
    assert printed == {}


def test_the_share_page_shows_the_expiry_in_the_institutions_zone(stack, admin_api,
                                                                   debtor_id, new_page):
    """The issue's case: a link ending at 23:59 −06:00 read "5:59" of the next day."""
    last_day = datetime.now(HOME).date() + timedelta(days=3)
    expires = datetime.combine(last_day, time(23, 59, 59), tzinfo=HOME)
    link = admin_api.post(stack.url("/api/v1/share-links"), timeout=30, json={
        "debtor_id": debtor_id, "expires_at": expires.isoformat(),
        "label": f"hora-{RUN}"})
    assert link.status_code == 201, link.text
    try:
        holder = new_page()
        holder.goto(link.json()["url"])
        shown = _text(holder)
        assert format_datetime(expires, "short", tzinfo=HOME, locale="es") in shown
        assert "23:59" in shown and not RAW_MOMENT.search(shown)
    finally:
        sql("DELETE FROM documents.share_links WHERE label = :l", l=f"hora-{RUN}")


def test_an_administrator_sets_a_users_zone_and_a_bad_one_is_named(stack, admin_api,
                                                                     far_user, demo_users,
                                                                     new_page):
    page = new_page()
    login(page, "admin", demo_users)
    page.goto(f"/admin/usuarios/{far_user['id']}")
    page.fill("#time_zone", "Marte/Olimpo")
    page.click("#save-user")
    expect(page.locator("#time_zone")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#user-form")).to_contain_text("Zona horaria desconocida")
    page.fill("#time_zone", "America/Tijuana")
    with page.expect_navigation():
        page.click("#save-user")
    user = admin_api.get(stack.url(f"/api/v1/users/{far_user['id']}"), timeout=30).json()
    assert user["time_zone"] == "America/Tijuana"
