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
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from recaudo_common.config import Settings, settings
from recaudo_common.demo import DEMO_PASSWORD
from tests import stack as runner

ROOT = Path(__file__).resolve().parents[2]


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


def pytest_collection_modifyitems(items):
    """Tests marked ``runs_last`` (the API fuzzer, which changes whatever it is allowed to)
    run after every other test of the session, whatever their file names."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)
