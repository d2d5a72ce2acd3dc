"""Signing in and out, CSRF and the security admin screens, in headless Chromium.

Runs against the whole test stack (``stack``) with the demo users seeded into the
test database (``demo_users``). Whatever these tests create has a name with this
run's random suffix, so runs never clash.
"""
from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from .helpers import PHONE, click_menu_link, login, overflow, token

RUN = secrets.token_hex(3)
GENERIC_LOGIN_ERROR = "Usuario o contraseña incorrectos"


@pytest.fixture()
def page(page, demo_users):
    """A fresh browser profile (no cookies) on the test stack with the demo users."""
    return page


@pytest.fixture(scope="module")
def api_as_admin(stack, demo_users) -> requests.Session:
    http = requests.Session()
    token = http.post(stack.url("/api/v1/auth/token"), timeout=30,
                      json={"username": "admin", "password": demo_users}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture(scope="module")
def make_user(stack, api_as_admin):
    """Creates a Gestor of institution 1 through the REST API as admin (failed logins
    and changes to it never throttle, lock or alter a demo user)."""
    profiles = {p["name"]: p["id"] for p in
                api_as_admin.get(stack.url("/api/v1/profiles"), timeout=30).json()}

    def make(prefix: str) -> dict:
        user = {"username": f"{prefix}-{RUN}", "display_name": f"Prueba {prefix} {RUN}",
                "profile_id": profiles["Gestor"], "institutions": [1],
                "password": f"clave-segura-{RUN}-{prefix}"}
        created = api_as_admin.post(stack.url("/api/v1/users"), json=user, timeout=30)
        assert created.status_code == 201, created.text
        return {**user, "id": created.json()["id"]}

    return make


@pytest.fixture(scope="module")
def throwaway_user(make_user) -> dict:
    return make_user("navegador")


def session_cookies(page: Page) -> list[dict]:
    return [c for c in page.context.cookies() if c["name"] == "recaudo_session"]


# --- signing in and out ---------------------------------------------------------------

def test_login_shows_the_user_and_logout_returns_to_the_login_page(page, demo_users):
    login(page, "gestor1", demo_users)
    assert urlsplit(page.url).path == "/"
    expect(page.locator("h1#welcome")).to_have_text("Bienvenido a Recaudo")
    expect(page.locator("#user-menu summary")).to_have_text("Carlos Bourges Medina")
    expect(page.locator("#login-link")).to_have_count(0)
    expect(page.locator("#admin-link")).to_have_count(0)   # a Gestor administers nothing
    assert len(session_cookies(page)) == 1

    page.locator("#user-menu summary").click()
    expect(page.locator("#logout")).to_be_visible()
    with page.expect_navigation():
        page.click("#logout")
    assert urlsplit(page.url).path == "/login"
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#user-menu")).to_have_count(0)
    assert session_cookies(page) == []

    # the old session is gone: a page that needs one sends us to log in again
    page.goto("/cuenta")
    assert "/login?next=/cuenta" in page.url


def test_wrong_password_shows_the_generic_error_and_sets_no_session(page, throwaway_user):
    page.goto("/login")
    page.fill("#username", throwaway_user["username"])
    page.fill("#password", throwaway_user["password"] + "-mal")
    with page.expect_response(lambda r: r.url.endswith("/login")
                              and r.request.method == "POST") as answer:
        page.click("#login-submit")
    assert answer.value.status == 401
    expect(page.locator("#login-error")).to_have_text(GENERIC_LOGIN_ERROR)
    expect(page.locator("#username")).to_have_value(throwaway_user["username"])
    assert session_cookies(page) == []

    # the right password still works
    # (one failed login per run: 20 an hour from one address throttle every login)
    login(page, throwaway_user["username"], throwaway_user["password"])
    expect(page.locator("#user-menu summary")).to_have_text(throwaway_user["display_name"])


def test_a_form_post_without_the_csrf_token_is_rejected(page, demo_users):
    login(page, "gestor1", demo_users)
    page.goto("/cuenta")
    form = page.locator("form:has(input[name=action][value=profile])")
    form.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    form.locator("input[name=display_name]").fill(f"Cambiado sin token {RUN}")
    with page.expect_response(lambda r: r.url.endswith("/cuenta")
                              and r.request.method == "POST") as answer:
        form.locator("button[type=submit]").click()
    assert answer.value.status == 403
    assert answer.value.json()["error"]["code"] == "csrf_failed"
    assert json.loads(page.locator("body").inner_text())["error"]["code"] == "csrf_failed"

    # a request forged from elsewhere with the session cookie but no token: same answer
    forged = page.request.post("/cuenta", form={"action": "profile", "language": "en",
                                                "display_name": f"Falsificado {RUN}"})
    assert forged.status == 403
    assert forged.json()["error"]["code"] == "csrf_failed"

    # nothing changed, and with the token the same form works
    page.goto("/cuenta")
    name = page.locator("form:has(input[name=action][value=profile]) input[name=display_name]")
    expect(name).to_have_value("Carlos Bourges Medina")
    with page.expect_navigation():
        page.locator("form:has(input[name=action][value=profile]) button[type=submit]").click()
    assert page.url.endswith("/cuenta?done=profile")
    expect(page.locator("p.notice")).to_be_visible()


# --- the admin screens -------------------------------------------------------------------

def test_admin_creates_a_user_through_the_users_screen(page, demo_users, screenshots):
    login(page, "admin", demo_users)
    with page.expect_navigation():
        click_menu_link(page, "#admin-link")
    assert page.url.endswith("/admin/usuarios")
    expect(page.locator("nav.admin-nav a[aria-current=page]")).to_have_text("Usuarios")
    table = page.locator("#users-table")
    expect(table.locator("tr[data-username=gestor1] td").nth(2)).to_have_text("Gestor")
    expect(table.locator("tr[data-username=admin] td").nth(3)).to_have_text("Todas")
    page.screenshot(path=str(screenshots / "admin-users.png"), full_page=True)

    username = f"prueba-{RUN}"
    with page.expect_navigation():
        page.click("#new-user")
    page.fill("#username", username)
    page.fill("#display_name", f"Usuario de Prueba {RUN}")
    page.fill("#email", f"{username}@recaudo.example")
    page.select_option("#profile_id", label="Gestor")
    page.locator("#institutions label", has_text="BBVA Bancomer").locator("input").check()
    page.fill("#password", username)                  # refused: equal to the username

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#save-user")
    assert answer.value.status == 422
    expect(page.locator("#err-password")).to_be_visible()
    expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#username")).to_have_value(username)       # what was typed is kept
    expect(page.locator("#display_name")).to_have_value(f"Usuario de Prueba {RUN}")
    expect(page.locator("#profile_id option:checked")).to_have_text("Gestor")
    expect(page.locator("#institutions label", has_text="BBVA Bancomer")
           .locator("input")).to_be_checked()
    expect(page.locator("#password")).to_have_value("")             # never echoed back

    page.fill("#password", f"una-clave-larga-{RUN}-segura")
    with page.expect_navigation():
        page.click("#save-user")
    assert "/admin/usuarios?" in page.url and "done=user_created" in page.url
    expect(page.locator("#notice")).to_have_text("Usuario creado.")
    row = page.locator(f"#users-table tr[data-username='{username}']")
    expect(row.locator("td").nth(1)).to_have_text(f"Usuario de Prueba {RUN}")
    expect(row.locator("td").nth(2)).to_have_text("Gestor")
    expect(row.locator("td").nth(3)).to_have_text("BANCOMER")
    expect(row.locator("td").nth(4)).to_have_text("activo")
    expect(row.locator("td").nth(5)).to_have_text("Nunca")

    # the search box finds it from the full list too
    page.goto("/admin/usuarios")
    page.fill("#search", username)
    with page.expect_navigation():
        page.locator("#user-filters button[type=submit]").click()
    expect(page.locator("#users-table tbody tr")).to_have_count(1)
    expect(page.locator(f"tr[data-username='{username}']")).to_be_visible()
    page.fill("#search", f"nadie-{RUN}")
    with page.expect_navigation():
        page.locator("#user-filters button[type=submit]").click()
    expect(page.locator("#empty-state")).to_contain_text("Ningún usuario coincide")


def test_admin_edits_profiles_with_the_permission_checklist(page, demo_users, screenshots):
    login(page, "admin", demo_users)
    page.goto("/admin/perfiles")
    with page.expect_navigation():
        page.locator("#profiles-table tr[data-profile=Gestor] a").click()
    expect(page.locator("#name")).to_have_value("Gestor")
    expect(page.locator("#permissions input[value='queues.work']")).to_be_checked()
    expect(page.locator("#permissions input[value='users.manage']")).not_to_be_checked()
    expect(page.locator("#permissions label[title='queues.work']")).to_contain_text(
        "Trabajar filas de cobranza")
    page.screenshot(path=str(screenshots / "admin-profile.png"), full_page=True)

    # the labels come in the user's language
    page.goto("/idioma/en?next=" + urlsplit(page.url).path)
    expect(page.locator("#permissions label[title='queues.work']")).to_contain_text(
        "Work collection queues")
    expect(page.locator("#save-profile")).to_have_text("Save changes")


def test_admin_screens_fit_a_phone(browser, stack, demo_users, screenshots):
    context = browser.new_context(base_url=stack.base_url, viewport=PHONE, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    try:
        page = context.new_page()
        login(page, "admin", demo_users)
        for path in ("/admin/usuarios", "/admin/usuarios/1", "/admin/perfiles",
                     "/admin/perfiles/1", "/admin/equipos", "/admin/llaves", "/admin/bitacora"):
            page.goto(path)
            result = overflow(page)
            assert result["scrollWidth"] <= result["innerWidth"], (path, result)
        page.goto("/admin/usuarios")
        page.screenshot(path=str(screenshots / "admin-users-phone.png"))
    finally:
        context.close()


def test_a_gestor_gets_403_on_the_admin_screens(page, demo_users):
    login(page, "gestor1", demo_users)
    expect(page.locator("#admin-link")).to_have_count(0)
    for path in ("/admin/usuarios", "/admin/perfiles/1", "/admin/llaves", "/admin/bitacora"):
        response = page.goto(path)
        assert response.status == 403, path
        expect(page.locator("#error-code")).to_have_text("permission_denied")


def _token_works(stack, token: str) -> bool:
    answer = requests.get(stack.url("/api/v1/auth/me"), timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    return answer.status_code == 200


def test_admin_disables_enables_and_resets_the_password_of_a_user(page, stack, demo_users,
                                                                  make_user):
    user = make_user("acciones")
    login(page, "admin", demo_users)
    page.goto(f"/admin/usuarios/{user['id']}")
    expect(page.locator("#user-status")).to_have_text("activo")

    access = token(stack.base_url, user["username"], user["password"])
    with page.expect_navigation():
        page.click("#disable-user")
    expect(page.locator("#notice")).to_contain_text("Usuario desactivado")
    expect(page.locator("#user-status")).to_have_text("inactivo")
    assert not _token_works(stack, access)          # ended at once

    with page.expect_navigation():
        page.click("#enable-user")
    expect(page.locator("#notice")).to_have_text("Usuario activado.")
    access = token(stack.base_url, user["username"], user["password"])

    # a password the rules refuse: 422, the reason next to the field
    page.fill("#new-password", user["username"])
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#reset-password-submit")
    assert answer.value.status == 422
    expect(page.locator("#err-new-password")).to_be_visible()
    assert _token_works(stack, access)              # a refused reset changes nothing

    new_password = f"otra-clave-{RUN}-distinta"
    page.fill("#new-password", new_password)
    with page.expect_navigation():
        page.click("#reset-password-submit")
    expect(page.locator("#notice")).to_contain_text("Contraseña asignada")
    assert not _token_works(stack, access)          # the reset ended their sessions
    assert _token_works(stack, token(stack.base_url, user["username"], new_password))

    # the audit log tells who did it
    page.goto("/admin/bitacora?accion=user_disabled&usuario=admin")
    expect(page.locator("#audit-table tbody tr").first.locator("td").nth(3)).to_have_text(
        user["username"])


def test_an_api_key_is_shown_once_works_and_can_be_revoked(page, stack, demo_users, make_user):
    user = make_user("socio")
    login(page, "admin", demo_users)
    page.goto("/admin/llaves")
    with page.expect_navigation():
        page.click("#new-key")
    page.select_option("#user_id", value=str(user["id"]))
    page.fill("#key-name", f"Conciliación {RUN}")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#create-key")
    assert answer.value.status == 200
    assert answer.value.headers["cache-control"] == "no-store"
    assert "/admin/llaves/nueva" in page.url          # no redirect: the key is in no URL
    expect(page.locator("#key-created .warning")).to_contain_text("única vez")
    key = page.locator("#api-key").inner_text().strip()
    assert key.startswith("rk_")

    me = requests.get(stack.url("/api/v1/auth/me"), timeout=30,
                      headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["username"] == user["username"]

    with page.expect_navigation():
        page.click("#keys-back")
    row = page.locator(f"#keys-table tr[data-key='Conciliación {RUN}']")
    expect(row.locator("td").nth(2)).to_have_text(user["username"])
    expect(row.locator("td").nth(6)).to_have_text("activa")
    assert key not in page.content()                  # never shown again

    row.locator("details.confirm summary").click()
    with page.expect_navigation():
        row.locator("button.revoke").click()
    expect(page.locator("#notice")).to_have_text("Llave revocada.")
    expect(page.locator(f"#keys-table tr[data-key='Conciliación {RUN}'] td").nth(6)) \
        .to_have_text("revocada")
    gone = requests.get(stack.url("/api/v1/auth/me"), timeout=30,
                        headers={"Authorization": f"Bearer {key}"})
    assert gone.status_code == 401


def test_admin_creates_a_team_and_a_profile(page, demo_users, make_user):
    member = make_user("equipo")
    login(page, "admin", demo_users)

    page.goto("/admin/equipos")
    with page.expect_navigation():
        page.click("#new-team")
    page.fill("#name", f"Equipo {RUN}")
    page.select_option("#supervisor_id", label="Alejandra Flores Rosas (supervisor)")
    page.locator("#members label", has_text=member["username"]).locator("input").check()
    with page.expect_navigation():
        page.click("#save-team")
    expect(page.locator("#notice")).to_have_text("Equipo guardado.")
    row = page.locator(f"#teams-table tr[data-team='Equipo {RUN}']")
    expect(row.locator("td").nth(1)).to_have_text("Alejandra Flores Rosas")
    expect(row.locator("td").nth(2)).to_have_text(member["display_name"])

    # the same name again: a conflict, told above the form and next to the name
    page.goto("/admin/equipos/nuevo")
    page.fill("#name", f"Equipo {RUN}")
    page.select_option("#supervisor_id", label="Alejandra Flores Rosas (supervisor)")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("#save-team")
    assert answer.value.status == 409
    expect(page.locator("#form-failure")).to_contain_text("ya existe")
    expect(page.locator("#err-name")).to_be_visible()

    page.goto("/admin/perfiles")
    with page.expect_navigation():
        page.click("#new-profile")
    page.fill("#name", f"Consulta {RUN}")
    page.fill("#description", "Sólo consulta")
    page.locator("#permissions input[value='portfolio.read']").check()
    page.locator("#permissions input[value='reports.view']").check()
    with page.expect_navigation():
        page.click("#save-profile")
    expect(page.locator("#notice")).to_have_text("Perfil creado.")
    row = page.locator(f"#profiles-table tr[data-profile='Consulta {RUN}']")
    expect(row.locator("td").nth(2).locator("summary")).to_have_text("2 permisos")
