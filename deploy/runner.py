"""The local runner: starts and stops Recaudo's processes on this machine.

    python deploy/runner.py up            start the S3 server, the local mail servers (imap,
                                          smtp), the nameko services (config.SERVICES) and the gateway
    python deploy/runner.py down          stop exactly the processes ``up`` started
    python deploy/runner.py stop NAME     stop one of them (tests use it)
    python deploy/runner.py start NAME    start one of them again
    python deploy/runner.py status        what runs, with pids

Each process runs in its own session with its pid in ``<var>/run/NAME.pid`` and its
output in ``<var>/log/NAME.log``; ``down`` signals only pids whose command line is
still the one it started, so it never touches anything else. The docker-compose
file mirrors ``PROCESSES`` (a test keeps the two in step).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services" / "common"))

from recaudo_common.config import SERVICES, settings  # noqa: E402

CFG = settings()
VAR = (ROOT / CFG.var_dir).resolve()
BIN = ROOT / ".venv" / "bin"


def _s3_command() -> list[str]:
    endpoint = urlsplit(CFG.s3_endpoint)
    return [str(ROOT / "node_modules" / ".bin" / "s3rver"), "-d", str(VAR / "s3"),
            "-a", endpoint.hostname, "-p", str(endpoint.port), "--silent",
            "--configure-bucket", CFG.s3_bucket, str(ROOT / "deploy" / "s3-cors.xml")]


#: name -> command line. Order matters: ``up`` starts them in this order.
PROCESSES: dict[str, list[str]] = {
    "s3": _s3_command(),
    **{name: [str(BIN / "python"), "-m", "recaudo_common.run", name] for name in SERVICES},
    "gateway": [str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                "gateway.wsgi:app"],
}


#: local stand-ins for the mail servers a deployment already has (messaging's demo mailbox
#: and outbox): started before the services, not mirrored by docker-compose
DEMO_MAILBOX = ("cobranza@recaudo.demo", "recaudo-demo")
LOCAL: dict[str, list[str]] = {
    "imap": [str(BIN / "python"), "-m", "messaging.localmail", "imap", "--dir",
             str(VAR / "mail" / "imap"), "--port", str(CFG.local_imap_port),
             "--user", ":".join(DEMO_MAILBOX)],
    "smtp": [str(BIN / "python"), "-m", "messaging.localmail", "smtp", "--dir",
             str(VAR / "mail" / "sink"), "--port", str(CFG.local_smtp_port)],
}
ALL = {**LOCAL, **PROCESSES}


def _pidfile(name: str) -> Path:
    return VAR / "run" / f"{name}.pid"


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid``: with the pid it names one process forever."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[19]


def running_pid(name: str) -> int | None:
    """The pid we started for ``name`` if it is still that very process."""
    try:
        pid, started = _pidfile(name).read_text().split()
        return int(pid) if _start_time(int(pid)) == started else None
    except (OSError, ValueError):
        return None


#: processes that listen on a port of their own: name -> port
def _ports() -> dict[str, int]:
    return {"s3": urlsplit(CFG.s3_endpoint).port, "gateway": CFG.gateway_port,
            "imap": CFG.local_imap_port, "smtp": CFG.local_smtp_port}


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(name: str) -> int:
    pid = running_pid(name)
    if pid:
        return pid
    port = _ports().get(name)
    if port and _port_busy(port):
        raise SystemExit(f"cannot start {name}: port {port} is already taken by a process "
                         f"this runner did not start (stop it, or set another port)")
    for sub in ("run", "log", "s3"):
        (VAR / sub).mkdir(parents=True, exist_ok=True)
    log = open(VAR / "log" / f"{name}.log", "ab")
    env = dict(os.environ, PSYCOPG_WAIT_FUNC="wait_select", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(ALL[name], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    _pidfile(name).write_text(f"{proc.pid} {_start_time(proc.pid)}")
    return proc.pid


def stop(*names: str, timeout: float = 15.0) -> None:
    """SIGTERM the named processes together, wait for all, SIGKILL what lingers."""
    pids = {name: running_pid(name) for name in names}
    for pid in filter(None, pids.values()):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(running_pid(n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.1)
        for pid in filter(None, pids.values()):
            _reap(pid)
    for name in names:
        pid = running_pid(name)
        if pid:
            os.killpg(pid, signal.SIGKILL)
        _pidfile(name).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def health(timeout: float = 5.0) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{CFG.gateway_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)
    except OSError as err:
        return 0, {"error": str(err)}


def wait_healthy(seconds: float = 90.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        status, body = health()
        if status == 200:
            return body
        dead = [n for n in ALL if not running_pid(n)]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(f"  {VAR / 'log' / f'{n}.log'}" for n in (dead or ALL))
            raise SystemExit(f"Recaudo did not become healthy (not running: {dead or 'none'}; "
                             f"last answer {status} {body}). See the logs:\n{logs}")
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    command, *names = argv or ["status"]
    names = names or list(ALL)
    unknown = set(names) - set(ALL)
    if unknown:
        raise SystemExit(f"unknown process: {', '.join(sorted(unknown))}")
    if command == "up":
        for name in names:
            start(name)
        wait_healthy()
    elif command == "start":
        for name in names:
            start(name)
    elif command in ("down", "stop"):
        if "gateway" in names:  # stop taking requests first
            stop("gateway")
        stop(*names)
    elif command == "status":
        for name in names:
            pid = running_pid(name)
            print(f"{name:11} {'running, pid ' + str(pid) if pid else 'stopped'}")
    elif command == "health":
        status, body = health()
        print(json.dumps(body, indent=2))
        return 0 if status == 200 else 1
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
