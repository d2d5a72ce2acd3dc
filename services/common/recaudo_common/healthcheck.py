"""Container health checks: ``python -m recaudo_common.healthcheck [--live] <name>``.

``--live`` (liveness: restart me if this fails) asks only whether the process runs and its
event loop turns: for a service, whether its heartbeat file (``RECAUDO_HEARTBEAT_FILE``,
touched every 2 s by the loop) is fresh; for the gateway, whether ``/livez`` answers. An
outage of the broker or the database leaves a process live (it recovers by itself).

Without ``--live`` (readiness: send me work):

For a service, calls its ``health`` RPC (the service and its own database) through
a standalone nameko cluster proxy; for ``gateway``, asks the gateway's ``/healthz``
on this host. Exits 0 when healthy, 1 otherwise, printing one line either way, so
docker-compose (and anything else that runs a command) can use it.

The gateway counts as healthy when it answers its health report at all, 200 or 503:
a failing service makes *that* service's container unhealthy, and restarting the
gateway would not cure it.
"""
from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import warnings

from .config import SERVICES, settings
from .heartbeat import HEARTBEAT_STALE_SECONDS, heartbeat_age

TIMEOUT = 5.0


def check_service(name: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    with warnings.catch_warnings():  # eventlet's deprecation notice, on every probe
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        from nameko.standalone.rpc import ClusterRpcProxy

    try:
        with ClusterRpcProxy(settings().nameko, timeout=timeout) as cluster:
            report = getattr(cluster, name).health()
    except Exception as exc:  # the broker, the service or its database did not answer
        return False, f"{name}: {type(exc).__name__}: {exc}"
    return True, f"{name}: {json.dumps(report, sort_keys=True)}"


def check_gateway(timeout: float = TIMEOUT) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{settings().gateway_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, json.load(response)
    except urllib.error.HTTPError as err:
        try:
            status, body = err.code, json.load(err)
        except ValueError:
            return False, f"gateway: HTTP {err.code} without a health report"
    except (OSError, ValueError) as exc:
        return False, f"gateway: {type(exc).__name__}: {exc}"
    ok = status in (200, 503) and "services" in body
    return ok, f"gateway: HTTP {status}, failing: {body.get('failing')}"


def check_live(name: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    if name == "gateway":
        url = f"http://127.0.0.1:{settings().gateway_port}/livez"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status == 200, f"gateway: live (HTTP {response.status})"
        except (OSError, ValueError) as exc:
            return False, f"gateway: not live: {type(exc).__name__}: {exc}"
    path = settings().heartbeat_file
    if not path:
        return True, f"{name}: no RECAUDO_HEARTBEAT_FILE set, nothing to judge by"
    age = heartbeat_age(path)
    if age is None:  # still starting: its loop writes the first beat once it runs
        return True, f"{name}: no heartbeat yet in {path}"
    ok = age <= HEARTBEAT_STALE_SECONDS
    return ok, f"{name}: {'live' if ok else 'hung'}, last heartbeat {age:.1f} s ago"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = (*SERVICES, "gateway")
    live = argv[:1] == ["--live"]
    argv = argv[1:] if live else argv
    if len(argv) != 1 or argv[0] not in names:
        print(f"usage: python -m recaudo_common.healthcheck [--live] {{{'|'.join(names)}}}",
              file=sys.stderr)
        return 2
    if live:
        ok, line = check_live(argv[0])
    else:
        ok, line = check_gateway() if argv[0] == "gateway" else check_service(argv[0])
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
