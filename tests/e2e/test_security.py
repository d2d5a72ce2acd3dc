"""The web's security basics against the running stack: headers on every kind of answer,
the login throttle's 429 with Retry-After (API and form) and an administrator's unlock
that lifts it, and Swagger UI working under the Content-Security-Policy."""
from __future__ import annotations

import re
import secrets

import pytest
import requests
from playwright.sync_api import expect

from .helpers import login, sql

RUN = secrets.token_hex(3)


@pytest.fixture(scope="module")
def admin(stack, demo_users) -> requests.Session:
    http = requests.Session()
    token = http.post(stack.url("/api/v1/auth/token"), timeout=30,
                      json={"username": "admin", "password": demo_users}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture(scope="module")
def target(stack, admin) -> dict:
    """A Gestor made for this module: its failed logins never hold out a demo user."""
    profiles = {p["name"]: p["id"] for p in admin.get(stack.url("/api/v1/profiles")).json()}
    user = {"username": f"candado-{RUN}", "display_name": f"Candado {RUN}",
            "profile_id": profiles["Gestor"], "institutions": [1],
            "password": f"clave-segura-{RUN}"}
    created = admin.post(stack.url("/api/v1/users"), json=user, timeout=30)
    assert created.status_code == 201, created.text
    yield {**user, "id": created.json()["id"]}
    # the failures counted against the test stack's one address (127.0.0.1) go too
    sql("DELETE FROM auth.login_failures WHERE username = :u", u=user["username"])


def assert_security_headers(response: requests.Response) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp, (response.url, csp)
    assert headers.get("X-Frame-Options") == "DENY", response.url
    assert headers.get("X-Content-Type-Options") == "nosniff", response.url
    assert headers.get("Referrer-Policy") == "same-origin", response.url
    assert "Strict-Transport-Security" not in headers      # the test stack is plain HTTP


def test_every_kind_of_answer_has_the_security_headers(stack, admin, demo_users):
    anonymous = {"/": 200, "/login": 200, "/static/recaudo.css": 200, "/static/vendor/htmx.min.js": 200,
                 "/api/v1/openapi.json": 200, "/api/v1/docs": 200, "/no/such/page": 404,
                 "/api/v1/accounts": 401, "/healthz": 200}
    for path, status in anonymous.items():
        response = requests.get(stack.url(path), timeout=30, allow_redirects=False)
        assert response.status_code == status, (path, response.status_code)
        assert_security_headers(response)
        if path.startswith("/static/"):
            assert "no-store" not in response.headers.get("Cache-Control", "")

    # authenticated answers are never kept in a cache: the API with a token...
    for path in ("/api/v1/auth/me", "/api/v1/users", "/api/v1/users/999999999"):
        response = admin.get(stack.url(path), timeout=30)
        assert_security_headers(response)
        assert response.headers["Cache-Control"] == "no-store", path

    # ...and the pages with a session, whose cookie is not Secure over plain HTTP
    browser_like = requests.Session()
    form = browser_like.get(stack.url("/login"), timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    logged_in = browser_like.post(stack.url("/login"), timeout=30, allow_redirects=False, data={
        "username": "gestor1", "password": demo_users, "csrf_token": csrf})
    assert logged_in.status_code == 302
    cookie = logged_in.headers["Set-Cookie"]
    assert "recaudo_session=" in cookie and "HttpOnly" in cookie and "Secure" not in cookie
    assert logged_in.headers["Cache-Control"] == "no-store"
    for path in ("/", "/cartera", "/cuenta"):
        response = browser_like.get(stack.url(path), timeout=30)
        assert response.status_code == 200, path
        assert_security_headers(response)
        assert response.headers["Cache-Control"] == "no-store", path


def _form_login(stack, username: str, password: str) -> requests.Response:
    http = requests.Session()
    form = http.get(stack.url("/login"), timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    return http.post(stack.url("/login"), timeout=30, allow_redirects=False, data={
        "username": username, "password": password, "csrf_token": csrf})


def test_wrong_passwords_answer_429_with_retry_after_until_an_admin_unlocks(stack, admin,
                                                                           target):
    token_url = stack.url("/api/v1/auth/token")
    for _ in range(5):
        wrong = requests.post(token_url, timeout=30, json={"username": target["username"],
                                                           "password": "no-es-la-clave"})
        assert wrong.status_code == 401, wrong.text
    # from this address, even the right password waits now, and is told how long
    right = {"username": target["username"], "password": target["password"]}
    throttled = requests.post(token_url, json=right, timeout=30)
    assert throttled.status_code == 429, throttled.text
    assert 1 <= int(throttled.headers["Retry-After"]) <= 15
    assert throttled.json()["error"]["code"] == "throttled"
    assert "username" in throttled.json()["error"]["fields"]
    assert_security_headers(throttled)
    form = _form_login(stack, target["username"], target["password"])   # the UI's form too
    assert form.status_code == 429 and 1 <= int(form.headers["Retry-After"]) <= 15
    assert "Demasiados intentos" in form.text

    shown = admin.get(stack.url(f"/api/v1/users/{target['id']}"), timeout=30).json()
    assert shown["locked"] is True and shown["login_wait"] > 0

    unlocked = admin.post(stack.url(f"/api/v1/users/{target['id']}/unlock"), timeout=30)
    assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
    assert requests.post(token_url, json=right, timeout=30).status_code == 200
    assert _form_login(stack, target["username"], target["password"]).status_code == 302

    audit = admin.get(stack.url("/api/v1/audit"), params={"per_page": 100}, timeout=30).json()
    mine = [e for e in audit["items"] if e["target_user_id"] == target["id"]]
    actions = [e["action"] for e in reversed(mine)]
    assert actions.count("login_failed") == 5
    assert actions[-4:] == ["account_unlocked", "token_issued", "login_succeeded",
                            "login_succeeded"]
    throttle = next(e for e in mine if e["action"] == "login_throttled")
    assert throttle["details"]["scopes"]["account_address"]["failures"] == 5
    assert next(e for e in mine if e["action"] == "account_unlocked")["actor"] == "admin"


def test_swagger_ui_works_under_the_content_security_policy(page, stack):
    page.goto("/api/v1/docs")
    expect(page.locator("#swagger-ui-container .info .title")).to_contain_text("Recaudo API")
    expect(page.locator(".opblock").first).to_be_visible()
    # (no_csp_violations, shared by every e2e test, fails this test on any violation)


def test_what_inline_handlers_did_still_works_from_files(page, demo_users):
    """recaudo.js does what on*= attributes and htmx trigger filters did (the CSP refuses
    both): a filter's change refreshes the accounts list in place, choosing an institution
    submits the dashboard's form."""
    login(page, "admin", demo_users)
    page.goto("/cartera")
    page.click("details.more-filters summary")
    with page.expect_response(lambda r: "/cartera?" in r.url and "institucion=1" in r.url):
        page.select_option("#filter-institution", "1")      # htmx, no navigation
    expect(page).to_have_url(re.compile(r"institucion=1"))
    expect(page.locator("#results")).to_be_visible()

    page.goto("/tableros/institucion")
    with page.expect_navigation(url=re.compile(r"institution_id=2")):
        page.select_option("#institution_id", "2")
    expect(page.locator("#institution_id")).to_have_value("2")
