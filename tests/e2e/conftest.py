"""End-to-end fixtures: the whole stack, started by the local runner with the test settings.

``make test`` exports the test settings (separate database, vhost, ports and
``var/test``; see TEST_ENV in the Makefile) and has already created the database and
the vhost and migrated them. This phase runs without eventlet: plain ``requests``
and Playwright's sync API drive the gateway from outside, as a user would. Every browser
context any test opens is watched for Content-Security-Policy violations, and a test
during which one happened fails (``no_csp_violations``).
"""
from __future__ import annotations

import os
import secrets
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from recaudo_common.config import Settings, settings
from recaudo_common.demo import DEMO_PASSWORD, USER_IDS
from tests import stack as runner

from .helpers import CHROMIUM, CHROMIUM_ARGS, DEMO_MAILBOX, INSTITUTION, ROOT, Api, sql, token


class Stack:
    """The running stack: where the gateway answers, and the runner's stop/start."""

    def __init__(self, cfg: Settings):
        self.cfg = cfg
        self.base_url = runner.base_url()
        self.var_dir = (ROOT / cfg.var_dir).resolve()
        self.http = requests.Session()

    # the local runner (deploy/runner.py), as a subprocess with this environment
    up = staticmethod(runner.up)        # idempotent: starts what is not running, waits
    down = staticmethod(runner.down)
    stop = staticmethod(runner.stop)
    start = staticmethod(runner.start)  # does not wait; see wait_healthy()

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.get(self.url(path), **kwargs)

    def wait_healthy(self, seconds: float = 60.0) -> dict:
        """Poll /healthz until every service is ok; fail with the last answer on timeout."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                response = self.get("/healthz", timeout=10)
                if response.status_code == 200:
                    return response.json()
                last = f"{response.status_code} {response.text[:500]}"
            except requests.RequestException as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise AssertionError(f"the stack did not become healthy in {seconds:.0f} s; "
                                     f"last answer: {last}; logs in {self.var_dir / 'log'}")
            time.sleep(0.5)

    @contextmanager
    def stopped(self, name: str, recover_seconds: float = 60.0):
        """Stop one process for the block, then start it and wait until all is healthy."""
        self.stop(name)
        try:
            yield
        finally:
            self.start(name)
            self.wait_healthy(recover_seconds)


#: the CSP violations the browsers reported during the current test
CSP_VIOLATIONS: list[str] = []

#: every document reports what the policy blocked, with where, to the console
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
    "CSP violation: " + e.effectiveDirective + " blocked " + (e.blockedURI || "inline")
    + " in " + e.documentURI + " (" + (e.sourceFile || "?") + ":" + e.lineNumber + ")"));
"""


def _is_csp_violation(text: str) -> bool:
    return text.startswith("CSP violation") or "Content Security Policy" in text


def _watch_csp(context) -> None:
    context.add_init_script(_REPORT_VIOLATIONS)
    context.on("console", lambda message: CSP_VIOLATIONS.append(message.text)
               if _is_csp_violation(message.text) else None)


@pytest.fixture(scope="session", autouse=True)
def _every_browser_context_watches_csp():
    """Wraps Playwright's ``Browser.new_context`` once for the session, so every browser
    fixture of every module (each launches its own Chromium) is watched."""
    try:
        from playwright.sync_api import Browser
    except ImportError:     # no browser tests in this environment
        yield
        return
    original = Browser.new_context

    def new_context(self, *args, **kwargs):
        context = original(self, *args, **kwargs)
        _watch_csp(context)
        return context

    Browser.new_context = new_context
    try:
        yield
    finally:
        Browser.new_context = original


@pytest.fixture(autouse=True)
def no_csp_violations():
    """Fails the test when a page it drove hit the Content-Security-Policy (an inline
    script or handler, eval, a style or a connection the policy does not allow)."""
    CSP_VIOLATIONS.clear()
    yield
    found, CSP_VIOLATIONS[:] = list(CSP_VIOLATIONS), []
    if found:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(dict.fromkeys(found)),
                    pytrace=False)


@pytest.fixture(scope="session")
def stack():
    """The whole stack for this session (started if not running already), stopped after."""
    try:
        running = Stack(settings())   # refuses the settings of `make up`
    except runner.StackError as exc:
        pytest.fail(str(exc), pytrace=False)
    started = time.monotonic()
    runner.up()                       # on failure: stops everything, raises with log tails
    print(f"\nstack up in {time.monotonic() - started:.1f} s at {running.base_url}")
    try:
        yield running
    finally:
        runner.down()


@pytest.fixture(scope="session")
def demo_users(stack) -> str:
    """The six demo users (admin, supervisor, gestor1, gestor2, abogado, cliente), the
    three demo institutions and the rest of the demo in the test database, by ``recaudo
    seed`` and ``recaudo seed-live`` in demo mode, as ``make up`` runs them around starting
    the stack (idempotent: what exists is kept). Answers their password."""
    env = {**os.environ, "RECAUDO_DEMO": "1"}
    for command in ("seed", "seed-live"):
        proc = subprocess.run([runner.PYTHON, "-m", "recaudo_common.cli", command], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or "not seeded" in proc.stderr:
            pytest.fail(f"recaudo {command} failed ({proc.returncode}):\n"
                        f"{proc.stdout}{proc.stderr}", pytrace=False)
    return DEMO_PASSWORD


# --- the browser (each module launches its own headless Chromium) ------------------------

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: deploy/bootstrap.sh --test installs it "
                    "(apt-get install chromium)", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def new_page(browser, stack):
    """fn(viewport=1280×900, timeout=20 s) -> a page in a fresh browser profile (no cookies)
    on the test stack; every profile is closed after the test."""
    contexts = []

    def make(viewport: dict | None = None, timeout: int = 20_000):
        context = browser.new_context(base_url=stack.base_url,
                                      viewport=viewport or {"width": 1280, "height": 900})
        context.set_default_timeout(timeout)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture()
def page(new_page):
    """A page in a fresh browser profile (no language cookie yet) on the test stack."""
    return new_page(timeout=15_000)


@pytest.fixture()
def screenshots(stack) -> Path:
    folder = stack.var_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- the worlds the API and browser modules of an area share --------------------------------

@pytest.fixture(scope="module")
def messaging_world(stack, demo_users):
    """For the messaging modules (API and browser): institution 1's contact window open
    to the whole day, a debtor of gestor1's with an address, the demo mailbox, an ``E2E
    correo …`` template; the window put back and the template retired after."""
    run = secrets.token_hex(3)
    clients = {}

    def api(username: str) -> Api:
        if username not in clients:
            clients[username] = Api(stack.base_url, token(stack.base_url, username, demo_users))
        return clients[username]

    window = sql("SELECT contact_from, contact_until, jurisdiction FROM portfolio.institutions "
                 "WHERE id = :i",
                 i=INSTITUTION)[0]
    # any hour (no seeded jurisdiction: the default policy, the institution's window only)
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59',"
        " jurisdiction = 'ZZ' WHERE id = :i", i=INSTITUTION)
    account_id, debtor_id, address = sql(
        "SELECT a.id, a.debtor_id, e.address FROM portfolio.accounts a"
        " JOIN portfolio.emails e ON e.debtor_id = a.debtor_id AND NOT e.do_not_contact"
        " WHERE a.institution_id = :i AND a.assigned_agent_id = :g"
        # every account of the debtor is gestor1's: mail matched by its sender lands on one
        # of them, which gestor1 must be able to open
        " AND NOT EXISTS (SELECT 1 FROM portfolio.accounts o WHERE o.debtor_id = a.debtor_id"
        "                 AND o.assigned_agent_id IS DISTINCT FROM :g)"
        " ORDER BY a.id DESC LIMIT 1",
        i=INSTITUTION, g=USER_IDS["gestor1"])[0]
    mailbox = next(b for b in api("admin").ok("GET", f"/api/v1/mailboxes?institution_id={INSTITUTION}")
                   if b["address"] == DEMO_MAILBOX)
    template = api("admin").ok("POST", "/api/v1/templates", {
        "institution_id": INSTITUTION, "name": f"E2E correo {run}-{secrets.token_hex(2)}",
        "subject_es": "Aviso {{ account.account_number }}",
        "text_es": "Hola {{ debtor.name }}, su saldo es ${{ account.balance|money }}.",
        "subject_en": "Notice {{ account.account_number }}",
        "text_en": "Hello {{ debtor.name }}."}, status=201)
    yield {"api": api, "account": account_id, "debtor": debtor_id, "address": address,
           "mailbox": mailbox, "template": template, "base_url": stack.base_url,
           "password": demo_users}
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u, "
        "jurisdiction = :j WHERE id = :i", f=window[0], u=window[1], j=window[2], i=INSTITUTION)
    sql("UPDATE messaging.templates SET active = false WHERE name LIKE 'E2E correo %'")


@pytest.fixture(scope="module")
def sms_world(stack, demo_users):
    """For the SMS modules (API and browser): institution 1's contact window open to the
    whole day, a debtor of gestor1's with a mobile only they have, an ``E2E SMS …``
    template; the window and the phone's consent put back, the template retired after."""
    run = secrets.token_hex(3)
    window = sql("SELECT contact_from, contact_until FROM portfolio.institutions WHERE id = :i",
                 i=INSTITUTION)[0]
    sql("UPDATE portfolio.institutions SET contact_from = '00:00', contact_until = '23:59:59'"
        " WHERE id = :i", i=INSTITUTION)
    account_id, debtor_id, phone_id, number = sql(
        "SELECT a.id, a.debtor_id, p.id, p.number FROM portfolio.accounts a"
        " JOIN portfolio.phones p ON p.debtor_id = a.debtor_id AND p.kind = 'mobile'"
        "  AND NOT p.do_not_call"
        " WHERE a.institution_id = :i AND a.assigned_agent_id = :g"
        "  AND (SELECT count(*) FROM portfolio.phones q WHERE q.number = p.number) = 1"
        " ORDER BY a.id LIMIT 1", i=INSTITUTION, g=USER_IDS["gestor1"])[0]
    gestor = Api(stack.base_url, token(stack.base_url, "gestor1", demo_users))
    template = Api(stack.base_url, token(stack.base_url, "admin", demo_users)).ok(
        "POST", "/api/v1/templates", {
            "institution_id": INSTITUTION, "name": f"E2E SMS {run}-{secrets.token_hex(2)}",
            "subject_es": "SMS",   # no name in it: a demo name with "Á" would make it UCS-2
            "text_es": "Hola, su saldo es ${{ account.balance|money }}.",
            "subject_en": "SMS", "text_en": "Hello {{ debtor.name }}."}, status=201)
    yield {"gestor": gestor, "account": account_id, "debtor": debtor_id, "number": number,
           "template": template, "password": demo_users}
    sql("UPDATE portfolio.institutions SET contact_from = :f, contact_until = :u WHERE id = :i",
        f=window[0], u=window[1], i=INSTITUTION)
    sql("UPDATE portfolio.phones SET do_not_call = false WHERE id = :p", p=phone_id)
    sql("UPDATE messaging.templates SET active = false WHERE name LIKE 'E2E SMS %'")


def pytest_collection_modifyitems(items):
    """Tests marked ``runs_last`` (the API fuzzer, which changes whatever it is allowed to)
    run after every other test of the session, whatever their file names."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)
