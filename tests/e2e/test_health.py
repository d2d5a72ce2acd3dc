"""The running stack over HTTP: health (and losing a service), API docs, errors, request ids."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from recaudo_common.config import SERVICES
from tests import stack as runner


def test_healthz_reports_every_service_ok(stack):
    response = stack.get("/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["services"]) == set(SERVICES)
    for name, report in body["services"].items():
        assert report["status"] == "ok", (name, report)
        assert report["service"] == name
        assert report["database"] == "ok"


def test_api_health_agrees_with_healthz(stack):
    response = stack.get("/api/v1/system/health")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_a_stopped_service_is_reported_then_recovers(stack):
    victim = "queues"
    timeout = stack.cfg.health_timeout
    with stack.stopped(victim):
        started = time.monotonic()
        response = stack.get("/healthz")
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "failing"
        assert body["failing"] == [victim]
        assert body["services"][victim]["status"] == "failing"
        assert all(body["services"][name]["status"] == "ok"
                   for name in SERVICES if name != victim)
        # one slow service costs one health timeout, not one per service
        assert elapsed < timeout + 5, f"/healthz took {elapsed:.1f} s"

        # the API reports the same, and the home page's fragment still renders
        api = stack.get("/api/v1/system/health")
        assert api.status_code == 503 and api.json()["failing"] == [victim]
        fragment = stack.get("/estado")
        assert fragment.status_code == 200
        assert re.search(r'<tr class="failing">\s*<td>queues</td>', fragment.text)
    # stopped() started it again and waited (bounded) for /healthz to answer 200
    body = stack.get("/healthz").json()
    assert body["status"] == "ok" and body["failing"] == []


def test_openapi_document_is_valid_openapi_3(stack):
    response = stack.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    spec = response.json()
    assert re.fullmatch(r"3\.\d+\.\d+", spec["openapi"])
    assert spec["info"]["title"] and spec["info"]["version"]
    assert "/api/v1/system/health" in spec["paths"]
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    for path, item in spec["paths"].items():
        assert path.startswith("/"), path
        operations = {k: v for k, v in item.items() if k in methods}
        assert operations, f"{path} has no operation"
        for method, operation in operations.items():
            assert operation.get("responses"), f"{method.upper()} {path} has no responses"
            for code in operation["responses"]:
                assert code == "default" or re.fullmatch(r"[1-5](\d\d|XX)", str(code))
    # every local reference resolves inside the document
    refs = re.findall(r'"\$ref":\s*"([^"]+)"', response.text)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]


def test_api_docs_page_and_its_assets(stack):
    response = stack.get("/api/v1/docs")
    assert response.status_code == 200
    assets = set(re.findall(r'(?:src|href)="(/static/vendor/swagger-ui/[^"]+)"', response.text))
    assert {a.rsplit("/", 1)[1] for a in assets} >= {
        "swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}
    for asset in assets:
        served = stack.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
        kind = "text/css" if asset.endswith(".css") else "javascript"
        assert kind in served.headers["Content-Type"], (asset, served.headers["Content-Type"])


def test_home_page_assets_are_served(stack):
    """Stylesheets, scripts and the icon the page links to (npm assets copied locally)."""
    home = stack.get("/")
    assert home.status_code == 200
    assert home.headers["Content-Type"].startswith("text/html")
    assets = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', home.text))
    assert {"/static/vendor/pico.min.css", "/static/vendor/htmx.min.js"} <= assets
    for asset in assets:
        served = stack.get(asset)
        assert served.status_code == 200 and served.content, asset


@pytest.mark.parametrize("path", ["/no-such-page", "/api/v1/no-such-thing"])
def test_unknown_url_answers_the_json_error_body(stack, path):
    response = stack.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == "not_found"
    assert isinstance(error["message"], str) and error["message"]
    assert error["fields"] == {}


def test_request_id_is_echoed_or_made_up(stack):
    given = "e2e-request-0123456789"
    assert stack.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given
    assert stack.get("/nope", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given

    made_up = stack.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made_up)
    # a header that could forge log lines is replaced, not echoed
    forged = stack.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert forged.headers["X-Request-ID"] != "bad id\twith spaces"
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])


def test_livez_answers_without_asking_any_service(stack):
    """Liveness is the gateway's own: a service or the broker being down does not make it
    fail (that is readiness, /healthz)."""
    with stack.stopped("reports"):
        assert stack.get("/healthz").status_code == 503
        response = stack.get("/livez")
        assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_a_killed_service_is_started_again_by_the_supervisor_and_is_live(stack):
    pidfile = stack.var_dir / "run" / "reports.pid"
    pid = int(pidfile.read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        line = next(line for line in runner.status().splitlines() if line.startswith("reports "))
        if re.search(r"running, pid (\d+), restarted \d+x \(last after: killed by SIGKILL\)",
                     line) and f"pid {pid}," not in line:
            break
        assert time.monotonic() < deadline, line
        time.sleep(0.5)
    assert "reports exited unexpectedly (killed by SIGKILL)" in (
        stack.var_dir / "log" / "supervisor.log").read_text()
    stack.wait_healthy()
    heartbeat = stack.var_dir / "run" / "reports.heartbeat"
    deadline = time.monotonic() + 30
    while not heartbeat.exists():       # the restarted loop's first beat
        assert time.monotonic() < deadline, "no heartbeat from the restarted reports"
        time.sleep(0.5)
    probe = subprocess.run([runner.PYTHON, "-m", "recaudo_common.healthcheck", "--live",
                            "reports"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "RECAUDO_HEARTBEAT_FILE": str(heartbeat)})
    assert probe.returncode == 0 and "reports: live" in probe.stdout, probe.stdout + probe.stderr
