"""What the end-to-end modules share besides fixtures (those are in ``conftest.py``): the
REST API as a user, the test database, waiting; the queues service's projections filled
for institution 1; the browser's settings and steps; the stack's mail servers."""
from __future__ import annotations

import secrets
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from imapclient import IMAPClient
from sqlalchemy import create_engine, text

from recaudo_common.config import settings
from recaudo_common.demo import USER_IDS

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]


# --- the API, the database, waiting ----------------------------------------------------------

class Api:
    """The REST API as one user (``token``), or anonymous (``None``)."""

    def __init__(self, base_url: str, token: str | None):
        self.base_url, self.http = base_url, requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.http.request(method, self.base_url + path, json=body, **kwargs)

    def ok(self, method: str, path: str, body=None, status: int = 200):
        response = self.call(method, path, body)
        assert response.status_code == status, (method, path, response.status_code,
                                                response.text[:800])
        return response.json() if response.content else None


def token(base_url: str, username: str, password: str) -> str:
    """A bearer token of ``username``."""
    answer = requests.post(base_url + "/api/v1/auth/token", timeout=30,
                           json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def sql(statement: str, **params) -> list:
    """One statement on the test database, in its own transaction; its rows, if any."""
    engine = create_engine(settings().database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def wait_for(predicate, seconds: float = 30.0, what: str = "the condition"):
    """``predicate()``'s first true value, polled for up to ``seconds`` (else fails)."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.3)


# --- the queues service's projections of institution 1 ---------------------------------------

#: strategies the suites create are named ``E2E filas …`` (and removed at the end)
PREFIX = "E2E filas"
INSTITUTION = 1
TEAM_NAME = "Equipo Centro"
COLLECTORS = (USER_IDS["gestor1"], USER_IDS["gestor2"])


def remove_queue_leftovers(prefix: str = PREFIX) -> None:
    """Strategies these suites created (their queues and assignments go with them) and
    the demo collectors' leases."""
    sql("DELETE FROM queues.leases WHERE agent_id = ANY(:agents)", agents=list(COLLECTORS))
    sql("UPDATE queues.strategies SET challenger_id = NULL WHERE challenger_id IN "
        "(SELECT id FROM queues.strategies WHERE name LIKE :p)", p=f"{prefix}%")
    sql("DELETE FROM queues.strategies WHERE name LIKE :p", p=f"{prefix}%")


def prepare_queues(base_url: str, password: str) -> dict:
    """Fill the queues service's projections for institution 1 and the demo team; answers
    the team's id and the number of institution 1's accounts in the projection."""
    admin = Api(base_url, token(base_url, "admin", password))
    supervisor = Api(base_url, token(base_url, "supervisor", password))
    remove_queue_leftovers()
    # the demo's strategies (every demo institution has one applied) set aside: these suites
    # count what their own strategies hand the demo collectors
    sql("UPDATE queues.strategies SET state = 'archived' WHERE state = 'active'")
    sql("DELETE FROM queues.assignments WHERE queue_id IN (SELECT q.id FROM queues.queues q "
        "JOIN queues.strategies s ON s.id = q.strategy_id WHERE s.state = 'archived')")
    synced = supervisor.ok("POST", f"/api/v1/institutions/{INSTITUTION}/resync")
    assert synced["accounts"] > 100, synced
    sql("UPDATE queues.institution_rules SET contact_from = '00:00', contact_until = '23:59:59' "
        "WHERE institution_id = :i", i=INSTITUTION)
    team = next(t for t in admin.ok("GET", "/api/v1/teams") if t["name"] == TEAM_NAME)
    admin.ok("PUT", f"/api/v1/teams/{team['id']}", {
        "name": team["name"], "supervisor_id": team["supervisor_id"],
        "members": [m["id"] for m in team["members"]]})
    wait_for(lambda: {r[0] for r in sql(
        "SELECT agent_id FROM queues.team_members WHERE team_id = :t", t=team["id"])}
        >= set(COLLECTORS), what="the queues service to learn the team's members")
    facts = sql("SELECT count(*) FROM queues.account_facts WHERE institution_id = :i",
                i=INSTITUTION)[0][0]
    return {"team_id": team["id"], "facts": facts, "synced": synced["accounts"]}


def restore_contact_window(base_url: str, password: str) -> None:
    """The queues service's copy of the window back to the institution's own."""
    institution = Api(base_url, token(base_url, "admin", password)).ok(
        "GET", f"/api/v1/institutions/{INSTITUTION}")
    sql("UPDATE queues.institution_rules SET contact_from = CAST(:f AS time), "
        "contact_until = CAST(:u AS time) WHERE institution_id = :i",
        f=institution["contact_from"], u=institution["contact_until"], i=INSTITUTION)


def queue(name, conditions, team_id, sort=None, policy="round_robin") -> dict:
    return {"name": name, "conditions": conditions, "team_id": team_id, "policy": policy,
            "sort": sort or [{"field": "days_past_due", "direction": "desc"}]}


def release_all():
    """The demo collectors' leases, gone."""
    sql("DELETE FROM queues.leases WHERE agent_id = ANY(:agents)", agents=list(COLLECTORS))


# --- the browser -------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}


def login(page: Page, username: str, password: str):
    """Signs ``page`` in through the login form, as a person would."""
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#login-submit")


def click_menu_link(page: Page, link: str) -> None:
    """Clicks a link of the main menu (``#reports-link``…), opening first the dropdown
    (Reportes, Administración) that holds it, as a person would."""
    menu = page.locator(f"header nav details:has({link})")
    if menu.count() and not page.locator(link).is_visible():
        menu.locator("summary").click()
    page.click(link)


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


def overflow(page: Page) -> dict:
    """How much wider than the window the page is, and the first elements sticking out."""
    return page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
        wide: [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                      + (e.className && typeof e.className === 'string' ? '.' + e.className : ''))
            .slice(0, 10),
    })""")


# --- the stack's mail servers (dovecot and the SMTP sink) ----------------------------------------

#: the demo mailbox of institution 1 on the stack's dovecot
DEMO_MAILBOX, DEMO_MAILBOX_PASSWORD = "cobranza@recaudo.demo", "recaudo-demo"


def sink_messages() -> list:
    """What the stack's SMTP sink received, oldest first."""
    directory = ROOT / settings().var_dir / "mail" / "sink"
    files = sorted(directory.glob("*.eml"), key=lambda p: int(p.name.split("-")[0]))
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in files]


def append_mail(subject: str, sender: str, body: str = "Hola") -> None:
    """A message from ``sender`` put in the demo mailbox of institution 1 (IMAP APPEND)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, DEMO_MAILBOX, subject
    msg["Message-ID"] = f"<e2e-{secrets.token_hex(3)}-{time.time_ns()}@cliente.test>"
    msg.set_content(body)
    client = IMAPClient("127.0.0.1", port=settings().local_imap_port, ssl=False, timeout=20)
    try:
        client.login(DEMO_MAILBOX, DEMO_MAILBOX_PASSWORD)
        client.append("INBOX", msg.as_bytes())
    finally:
        client.logout()
