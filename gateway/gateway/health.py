"""``GET /healthz`` (readiness): every service answers its health RPC (its broker
connection, its own database and, for documents, the object store) in time; fast even
with the broker down (the proxy fails at once, no RPC timeout is waited).
``GET /livez`` (liveness): this gateway process answers HTTP, asking nobody: a broker or a
service that is down is no reason to restart the gateway."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, g, jsonify

from recaudo_common.config import SERVICES

bp = Blueprint("health", __name__)


class _Degraded(Exception):
    """Raised inside the proxy block so the pool drops a proxy that saw a timeout."""


def check_services() -> tuple[dict, int]:
    """Call every service's ``health`` concurrently on one proxy, with a short timeout;
    answer the report and its HTTP status (503 naming the failing services)."""
    pool = current_app.extensions["recaudo.rpc_health"]
    report = {}
    started = time.perf_counter()
    try:
        with pool.proxy({"request_id": g.get("request_id")}) as proxy:
            pending = {name: getattr(proxy, name).health.call_async() for name in SERVICES}
            for name, reply in pending.items():
                try:
                    report[name] = {"status": "ok", **reply.result()}
                except Exception as exc:  # any failure means this service is not healthy
                    report[name] = {"status": "failing", "error": type(exc).__name__}
            if any(r["status"] != "ok" for r in report.values()):
                raise _Degraded()
    except _Degraded:
        pass
    except Exception as exc:  # the broker itself is unreachable
        for name in SERVICES:
            report.setdefault(name, {"status": "failing", "error": type(exc).__name__})
    failing = [name for name in SERVICES if report[name]["status"] != "ok"]
    body = {"status": "failing" if failing else "ok", "failing": failing,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            "services": {name: report[name] for name in SERVICES}}
    return body, 503 if failing else 200


@bp.get("/livez")
def livez():
    return jsonify({"status": "ok"}), 200


@bp.get("/healthz")
def healthz():
    body, status = check_services()
    return jsonify(body), status
