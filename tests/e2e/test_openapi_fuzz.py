"""Schemathesis over ``/api/v1/openapi.json`` against the running stack: the spec tells the
truth and nothing answers a server error, for an administrator, a collector and a creditor.

Schemathesis (the CLI, as a subprocess: its JSON report gives the figures) generates
requests from the spec itself — valid ones and invalid ones — with a fixed seed and a
bounded number of examples per operation, once per profile with that user's bearer token,
and checks two things on every answer:

- ``not_a_server_error``: no 5xx, whatever the input;
- ``response_schema_conformance``: the body matches what the spec documents for that
  status (errors included: ``{"error": {"code", "message", "fields"}}``).

Any finding fails the test. The operations it must not call (they would log the run out,
change the passwords, profiles or state of the users this and later tests log in as, or
make the messaging service contact made-up mail hosts) are excluded below BY NAME, each
with its reason; the checks themselves are never relaxed. The test runs last in the e2e
phase (``runs_last``): what the fuzzer creates and changes cannot disturb other tests.
Schemathesis' coverage phase (every boundary value of every parameter) is left out: it
alone would take minutes; fuzzing reaches the same kinds of input, less systematically.
Figures and reports: ``var/test/schemathesis/``.
"""
from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .conftest import ROOT

RUN = secrets.token_hex(3)
PASSWORD = "fuzz-" + secrets.token_urlsafe(12)
SEED = 17017
MAX_EXAMPLES = 4                # per operation and phase
PHASES = "examples,fuzzing"   # the coverage phase alone would take minutes
CHECKS = "not_a_server_error,response_schema_conformance"
SCHEMATHESIS = ROOT / ".venv" / "bin" / "schemathesis"
TIME_LIMIT = 270                # seconds for the three runs (pytest's own limit is 300)

#: "METHOD /path" -> why the fuzzer must not call it
EXCLUDED = {
    "POST /api/v1/auth/logout": "revokes the token the run is using",
    "POST /api/v1/auth/password": "changes the password of the user the run logs in as",
    "POST /api/v1/users/{user_id}/password": "changes other users' passwords (demo users)",
    "POST /api/v1/users/{user_id}/disable": "disables users (the run's own, the demo ones)",
    "PATCH /api/v1/users/{user_id}": "changes users' profile, institutions and state",
    "PUT /api/v1/profiles/{profile_id}": "rewrites profiles' permissions (Administrador's)",
    "POST /api/v1/mailboxes": "points the mailbox sync at made-up hosts",
    "PUT /api/v1/mailboxes/{mailbox_id}": "points the mailbox sync at made-up hosts",
    "POST /api/v1/mailboxes/{mailbox_id}/test": "connects to the mailbox's (made-up) host",
    "POST /api/v1/mailboxes/{mailbox_id}/sync": "connects to the mailbox's (made-up) host",
    "GET /api/v1/mailboxes/{mailbox_id}/search": "connects to the mailbox's (made-up) host",
    "POST /api/v1/contact-policies/{jurisdiction}": "writes a policy version in force for later "
                                                    "runs (made-up rules would judge their calls)",
}

#: who the run acts as: profile name and institutions of the user it creates
PROFILES = {
    "admin": ("Administrador", {"all_institutions": True}),
    "gestor": ("Gestor", {"institutions": [1, 2]}),
    "cliente": ("Cliente", {"institutions": [1]}),
}

#: failure titles of each check (schemathesis groups its findings by kind)
CHECK_OF = {"Server error": "not_a_server_error"}


def _call(base_url, method, path, token=None, body=None):
    """One setup call; a login throttled by earlier tests' failures waits its Retry-After."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(3):
        response = requests.request(method, base_url + path, json=body, headers=headers,
                                    timeout=30)
        if response.status_code != 429:
            break
        time.sleep(min(30, int(response.headers.get("Retry-After", "5"))))
    assert response.status_code in (200, 201), (method, path, response.text[:500])
    return response.json()


@pytest.fixture(scope="module")
def tokens(stack, demo_users):
    """profile -> an access token of a user made for this run through the API."""
    admin = _call(stack.base_url, "POST", "/api/v1/auth/token",
                  body={"username": "admin", "password": demo_users})["access_token"]
    profiles = {p["name"]: p["id"] for p in _call(stack.base_url, "GET", "/api/v1/profiles",
                                                  admin)}
    answer = {}
    for who, (profile, reach) in PROFILES.items():
        username = f"fuzz-{who}-{RUN}"
        _call(stack.base_url, "POST", "/api/v1/users", admin, {
            "username": username, "display_name": f"Fuzz {who}", "password": PASSWORD,
            "profile_id": profiles[profile], **reach})
        answer[who] = _call(stack.base_url, "POST", "/api/v1/auth/token", body={
            "username": username, "password": PASSWORD})["access_token"]
    return answer


def _start(stack, who: str, token: str, report_dir: Path) -> subprocess.Popen:
    """One schemathesis run as ``who``, in the background (the three runs wait on the
    gateway far more than they compute: side by side they take the time of one). One
    worker each: hypothesis describing strategies from several threads trips CPython
    3.11's AST recursion check now and then ("Runtime Error"), a fault of the tool."""
    command = [
        str(SCHEMATHESIS), "run", stack.url("/api/v1/openapi.json"), "--url", stack.base_url,
        "-H", f"Authorization: Bearer {token}", "--checks", CHECKS, "--phases", PHASES,
        "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
        "--request-timeout", "30", "--generation-database", "none", "--no-color",
        "--suppress-health-check", "all", "--report", "json",
        "--report-json-path", str(report_dir / f"{who}.json"),
    ]
    for name in EXCLUDED:
        command += ["--exclude-name", name]
    (report_dir / f"{who}.json").unlink(missing_ok=True)
    with open(report_dir / f"{who}.log", "w") as log:
        return subprocess.Popen(command, cwd=report_dir, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.runs_last
def test_the_api_answers_as_its_openapi_says_and_never_a_server_error(stack, tokens, capsys):
    report_dir = (stack.var_dir / "schemathesis").resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    runs = {who: _start(stack, who, token, report_dir) for who, token in tokens.items()}
    for who, proc in runs.items():
        try:
            proc.wait(timeout=max(1.0, TIME_LIMIT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            for other in runs.values():
                other.kill()
            pytest.fail(f"schemathesis as {who} ran over {TIME_LIMIT} s; its output: "
                        f"{report_dir / (who + '.log')}", pytrace=False)
    findings, lines = {}, []
    for who in runs:
        log = (report_dir / f"{who}.log").read_text()
        report_file = report_dir / f"{who}.json"
        if not report_file.exists():
            pytest.fail(f"schemathesis as {who} wrote no report:\n{log[-5000:]}", pytrace=False)
        report = json.loads(report_file.read_text())
        per_check = {"not_a_server_error": 0, "response_schema_conformance": 0}
        for failure in report["failures"]:
            per_check[CHECK_OF.get(failure["title"], "response_schema_conformance")] += \
                failure["count"]
        lines.append(
            f"{who:8} operations {report['operations']['tested']} of "
            f"{report['operations']['total']} ({len(EXCLUDED)} excluded), "
            f"cases {report['test_cases']['generated']}, findings: "
            + ", ".join(f"{check} {n}" for check, n in per_check.items())
            + f", errors {len(report['errors'])}")
        if report["failures"] or report["errors"] or not report["operations"]["tested"]:
            findings[who] = log[-12000:]
    figures = (f"schemathesis (seed {SEED}, {MAX_EXAMPLES} examples per operation and phase, "
               f"{time.monotonic() - started:.0f} s):\n  " + "\n  ".join(lines))
    (report_dir / "figures.txt").write_text(figures + "\n")
    with capsys.disabled():     # shown in make test's output, passing or not
        print("\n" + figures)
    assert not findings, "\n\n".join(f"--- as {who} ---\n{out}" for who, out in findings.items())
