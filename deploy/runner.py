"""The local runner: starts and stops Recaudo's processes on this machine.

    python deploy/runner.py up            start the S3 server, the local mail servers (imap,
                                          smtp), the nameko services (config.SERVICES) and the gateway
    python deploy/runner.py up --scale "queues=2 activities=3"
                                          the same, with that many instances of those services
    python deploy/runner.py down          stop exactly the processes ``up`` started (every instance)
    python deploy/runner.py stop NAME     stop one of them (tests use it; ``queues-2`` is an instance)
    python deploy/runner.py start NAME    start one of them again
    python deploy/runner.py status        what runs, with pids, every instance
    python deploy/runner.py check-scale SPEC   only check a --scale SPEC (``make up`` does, first)

Each process runs in its own session with its pid in ``<var>/run/NAME.pid`` and its
output in ``<var>/log/NAME.log``; ``down`` signals only pids whose command line is
still the one it started, so it never touches anything else. A service's first instance
is NAME, the others NAME-2, NAME-3, ... (their own pid and log files): the broker shares
RPCs and events among them, and the database makes each timer's work happen once. The
docker-compose file mirrors ``PROCESSES`` (a test keeps the two in step).
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


def parse_scale(spec: str) -> dict[str, int]:
    """``"queues=2 activities=3"`` -> {"queues": 2, "activities": 3}; SystemExit naming
    what is wrong (only services scale: the gateway has its gunicorn workers)."""
    scale = {}
    for item in spec.replace(",", " ").split():
        name, _, count = item.partition("=")
        if name not in SERVICES:
            raise SystemExit(f"cannot scale {name!r}: only the services scale "
                             f"({', '.join(SERVICES)})")
        if not count.isdigit() or int(count) < 1:
            raise SystemExit(f"cannot scale {name} to {count!r}: give a whole number "
                             f"of instances, at least 1 (e.g. {name}=2)")
        scale[name] = int(count)
    return scale


def instance_names(scale: dict[str, int]) -> list[str]:
    """Every process ``up`` starts, in order: a service's extra instances follow it."""
    return [name if n == 1 else f"{name}-{n}" for name in ALL
            for n in range(1, scale.get(name, 1) + 1)]


def command(name: str) -> list[str]:
    """The command line of process ``name`` (an instance runs its service's)."""
    base, _, number = name.rpartition("-")
    return ALL[base] if base in SERVICES and number.isdigit() else ALL[name]


def started_names() -> list[str]:
    """Every known process and every extra instance with a pid file, each instance right
    after its service: what ``down`` and ``status`` cover."""
    extra = [p.stem for p in (VAR / "run").glob("*.pid") if _is_instance(p.stem)]
    names = []
    for name in ALL:
        names.append(name)
        names += sorted((n for n in extra if n.rpartition("-")[0] == name),
                        key=lambda n: int(n.rpartition("-")[2]))
    return names


def _is_instance(name: str) -> bool:
    base, _, number = name.rpartition("-")
    return base in SERVICES and number.isdigit() and int(number) > 1


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
    proc = subprocess.Popen(command(name), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
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


def wait_healthy(seconds: float = 90.0, names: list[str] | None = None) -> dict:
    names = names or list(ALL)
    deadline = time.monotonic() + seconds
    while True:
        status, body = health()
        if status == 200:
            return body
        dead = [n for n in names if not running_pid(n)]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(f"  {VAR / 'log' / f'{n}.log'}" for n in (dead or names))
            raise SystemExit(f"Recaudo did not become healthy (not running: {dead or 'none'}; "
                             f"last answer {status} {body}). See the logs:\n{logs}")
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    action, *names = argv or ["status"]
    scale = {}
    if action == "check-scale":
        parse_scale(" ".join(names))
        return 0
    if action == "up" and names[:1] == ["--scale"]:
        if len(names) < 2:
            raise SystemExit("--scale needs a value, e.g. --scale \"queues=2 activities=3\"")
        scale, names = parse_scale(names[1]), names[2:]
    if not names:
        names = instance_names(scale) if action == "up" else started_names()
    unknown = [n for n in names if n not in ALL and not _is_instance(n)]
    if unknown:
        raise SystemExit(f"unknown process: {', '.join(sorted(unknown))}")
    if action == "up":
        if scale or not argv[1:]:  # the scale asked is the scale: surplus instances stop
            stop(*[n for n in started_names() if _is_instance(n) and n not in names])
        for name in names:
            start(name)
        wait_healthy(names=names)
    elif action == "start":
        for name in names:
            start(name)
    elif action in ("down", "stop"):
        if "gateway" in names:  # stop taking requests first
            stop("gateway")
        stop(*names)
    elif action == "status":
        for name in names:
            pid = running_pid(name)
            print(f"{name:13} {'running, pid ' + str(pid) if pid else 'stopped'}")
    elif action == "health":
        status, body = health()
        print(json.dumps(body, indent=2))
        return 0 if status == 200 else 1
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
