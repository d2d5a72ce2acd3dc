"""The local runner: starts and stops Recaudo's processes on this machine.

    python deploy/runner.py up            start the S3 server, the local mail servers (imap,
                                          smtp), the nameko services (config.SERVICES) and the gateway
    python deploy/runner.py up --scale "queues=2 activities=3"
                                          the same, with that many instances of those services
    python deploy/runner.py down          stop exactly the processes ``up`` started (every instance)
    python deploy/runner.py stop NAME     stop one of them (tests use it; ``queues-2`` is an instance)
    python deploy/runner.py start NAME    start one of them again
    python deploy/runner.py status        what runs, with pids and restarts, every instance
    python deploy/runner.py check-scale SPEC   only check a --scale SPEC (``make up`` does, first)
    python deploy/runner.py supervise     the supervisor ``up`` leaves running (see below)

Each process runs in its own session with its pid in ``<var>/run/NAME.pid`` and its
output in ``<var>/log/NAME.log``; ``down`` signals only pids whose command line is
still the one it started, so it never touches anything else. A service's first instance
is NAME, the others NAME-2, NAME-3, ... (their own pid and log files): the broker shares
RPCs and events among them, and the database makes each timer's work happen once. The
docker-compose file mirrors ``PROCESSES`` (a test keeps the two in step).

Supervision, as compose's ``restart: unless-stopped`` or systemd's ``Restart=on-failure``:
``up`` leaves a small supervisor running (``<var>/run/supervisor.pid``) that starts again,
with backoff, every process that is wanted (``<var>/run/NAME.want``, written by ``start``,
removed by ``stop``) and not running, or whose heartbeat (``RECAUDO_HEARTBEAT_FILE``,
``<var>/run/NAME.heartbeat``) went stale. Each restart is logged with the exit reason
in ``<var>/log/supervisor.log`` and counted in ``<var>/run/NAME.restarts``. A few dozen
lines here rather than supervisord: the runner already owns the pid files, the stale-pid
safety and ``down``'s promise to stop exactly what it started, which supervisord would
duplicate (with its own config, socket and daemon to install).
"""
from __future__ import annotations

import fcntl
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
from recaudo_common.heartbeat import HEARTBEAT_STALE_SECONDS, heartbeat_age  # noqa: E402

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
#: what the local Kannel's MO callback carries: the demo institution's inbound token
#: (messaging.kannel.TOKEN, which the demo seed stores)
KANNEL_TOKEN = "recaudo-local-sms"
LOCAL: dict[str, list[str]] = {
    "imap": [str(BIN / "python"), "-m", "messaging.localmail", "imap", "--dir",
             str(VAR / "mail" / "imap"), "--port", str(CFG.local_imap_port),
             "--user", ":".join(DEMO_MAILBOX)],
    "smtp": [str(BIN / "python"), "-m", "messaging.localmail", "smtp", "--dir",
             str(VAR / "mail" / "sink"), "--port", str(CFG.local_smtp_port)],
    # the SMS gateway (Kannel with the fake SMSC), calling back messaging's listener
    "kannel": [str(BIN / "python"), "-m", "messaging.kannel", "--dir", str(VAR / "kannel"),
               "--port", str(CFG.local_kannel_port), "--callback", CFG.sms_callback_url,
               "--token", KANNEL_TOKEN],
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


def _is_service(name: str) -> bool:
    """A nameko service's process (any instance): it keeps a heartbeat."""
    return name in SERVICES or _is_instance(name)


def _pidfile(name: str) -> Path:
    return VAR / "run" / f"{name}.pid"


def _wantfile(name: str) -> Path:
    return VAR / "run" / f"{name}.want"


def _heartbeat(name: str) -> Path:
    return VAR / "run" / f"{name}.heartbeat"


def _restarts(name: str) -> Path:
    return VAR / "run" / f"{name}.restarts"


class _Locked:
    """The runner's lock: ``start``, ``stop`` and the supervisor never interleave (the
    supervisor must not restart what ``stop`` is stopping)."""

    def __enter__(self):
        (VAR / "run").mkdir(parents=True, exist_ok=True)
        self.file = open(VAR / "run" / "runner.lock", "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.file.close()


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
            "imap": CFG.local_imap_port, "smtp": CFG.local_smtp_port,
            "kannel": CFG.local_kannel_port}


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(*names: str, seconds: float = 30.0) -> None:
    """Want ``names`` running. The supervisor starts them when it runs (so it sees how they
    exit, should they); without it they are started here."""
    with _Locked():
        for name in names:
            if not running_pid(name):
                _check_port(name)
            _wantfile(name).touch()
        if not running_pid("supervisor"):
            for name in names:
                _spawn(name)
            return
    deadline = time.monotonic() + seconds
    while not all(running_pid(name) for name in names):
        if time.monotonic() > deadline:
            raise SystemExit(f"the supervisor did not start {', '.join(names)} in {seconds:g} "
                             f"s; see {VAR / 'log' / 'supervisor.log'}")
        time.sleep(0.1)


def _check_port(name: str) -> None:
    port = _ports().get(name)
    if port and _port_busy(port):
        raise SystemExit(f"cannot start {name}: port {port} is already taken by a process "
                         f"this runner did not start (stop it, or set another port)")


def _spawn(name: str) -> int:
    pid = running_pid(name)
    if pid:
        return pid
    _check_port(name)
    for sub in ("run", "log", "s3"):
        (VAR / sub).mkdir(parents=True, exist_ok=True)
    log = open(VAR / "log" / f"{name}.log", "ab")
    env = dict(os.environ, PSYCOPG_WAIT_FUNC="wait_select", PYTHONUNBUFFERED="1")
    if _is_service(name):
        _heartbeat(name).unlink(missing_ok=True)
        env["RECAUDO_HEARTBEAT_FILE"] = str(_heartbeat(name))
    proc = subprocess.Popen(command(name), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    _pidfile(name).write_text(f"{proc.pid} {_start_time(proc.pid)}")
    return proc.pid


def stop(*names: str, timeout: float = 15.0) -> None:
    """SIGTERM the named processes together, wait for all, SIGKILL what lingers."""
    with _Locked():
        for name in names:
            _wantfile(name).unlink(missing_ok=True)
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


#: seconds a process must run to count as started well (its backoff starts over)
STEADY_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 30.0


class Supervisor:
    """Starts again what is wanted and not running (see the module's docstring)."""

    def __init__(self):
        self.log = open(VAR / "log" / "supervisor.log", "a", buffering=1)
        self.exits: dict[int, int] = {}        # pid -> wait status, of our own children
        self.due: dict[str, float] = {}        # name -> when to start it again
        self.reasons: dict[str, str] = {}
        self.failures: dict[str, int] = {}     # quick deaths in a row, for the backoff
        self.since: dict[str, tuple[int, float]] = {}  # name -> (pid, seen running since)

    def say(self, message: str) -> None:
        self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def run(self) -> None:
        self.say(f"supervising what is wanted in {VAR / 'run'} (pid {os.getpid()})")
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        while not stopping:
            self._reap()
            with _Locked():
                wanted = wanted_names()
                for name in (set(self.since) | set(self.due)) - set(wanted):
                    for state in (self.due, self.since, self.reasons):  # stopped on purpose
                        state.pop(name, None)
                for name in wanted:
                    self.check(name)
            time.sleep(0.5)
        self.say("supervisor stopped")

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            self.exits[pid] = status

    def check(self, name: str) -> None:
        now = time.monotonic()
        pid = running_pid(name)
        if pid:
            seen_pid, since = self.since.get(name, (None, now))
            if seen_pid != pid:
                self.since[name] = (pid, now)
            elif now - since > STEADY_SECONDS:
                self.failures[name] = 0
            age = heartbeat_age(str(_heartbeat(name))) if _is_service(name) else None
            if age is not None and age > HEARTBEAT_STALE_SECONDS:
                self.say(f"{name} (pid {pid}) hung: no heartbeat for {age:.0f} s; killing it")
                os.killpg(pid, signal.SIGKILL)
                self.reasons[name] = f"hung (no heartbeat for {age:.0f} s), killed"
            return
        if name not in self.since and name not in self.due:  # wanted just now: start it
            self._start(name, now)
            return
        if name not in self.due:
            last_pid = self.since.pop(name, (None, 0))[0]
            reason = self.reasons.pop(name, None) or self._exit_reason(name, last_pid)
            delay = min(BACKOFF_MAX_SECONDS, 0.5 * 2 ** self.failures.get(name, 0))
            self.failures[name] = self.failures.get(name, 0) + 1
            self.due[name] = now + delay
            self.reasons[name] = reason
            self.say(f"{name} exited unexpectedly ({reason}); restarting in {delay:g} s")
            return
        if now >= self.due[name]:
            del self.due[name]
            reason = self.reasons.pop(name, "")
            count = _restart_count(name) + 1
            _restarts(name).write_text(f"{count} {reason}")
            pid = self._start(name, now)
            if pid:
                self.say(f"{name} restarted (restart {count}, pid {pid}) after: {reason}")

    def _start(self, name: str, now: float) -> int | None:
        try:
            pid = _spawn(name)
        except (SystemExit, OSError) as exc:  # e.g. its port taken meanwhile: try later
            self.reasons[name] = f"could not start: {exc}"
            self.due[name] = now + BACKOFF_MAX_SECONDS
            self.say(f"{name} not started ({exc}); trying again in {BACKOFF_MAX_SECONDS:g} s")
            return None
        self.since[name] = (pid, now)
        return pid

    def _exit_reason(self, name: str, pid: int | None) -> str:
        status = self.exits.pop(pid, None) if pid else None
        if status is not None:
            if os.WIFSIGNALED(status):
                return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
            return f"exit status {os.WEXITSTATUS(status)}"
        lines = (VAR / "log" / f"{name}.log").read_text(errors="replace").splitlines() \
            if (VAR / "log" / f"{name}.log").exists() else []
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return f"exit status unknown; last log line: {last[:200]}" if last \
            else "exit status unknown"


def wanted_names() -> list[str]:
    """What the supervisor looks after: every process wanted now (``start`` wants it,
    ``stop`` no longer), in ``up``'s order."""
    wanted = {p.stem for p in (VAR / "run").glob("*.want")}
    return [n for n in started_names() if n in wanted] + sorted(
        wanted - set(started_names()))


def _restart_count(name: str) -> int:
    try:
        return int(_restarts(name).read_text().split(" ", 1)[0])
    except (OSError, ValueError):
        return 0


def start_supervisor() -> int:
    """Leave the supervisor running (once), in a session of its own."""
    pid = running_pid("supervisor")
    if pid:
        return pid
    for sub in ("run", "log"):
        (VAR / sub).mkdir(parents=True, exist_ok=True)
    for counted in (VAR / "run").glob("*.restarts"):  # a new run counts from zero
        counted.unlink()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "supervise"],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(VAR / "log" / "supervisor.log", "ab"),
                            start_new_session=True, env=dict(os.environ))
    _pidfile("supervisor").write_text(f"{proc.pid} {_start_time(proc.pid)}")
    return proc.pid


def stop_supervisor(timeout: float = 10.0) -> None:
    pid = running_pid("supervisor")
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running_pid("supervisor") and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
    _pidfile("supervisor").unlink(missing_ok=True)


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
        start_supervisor()
        start(*names)
        wait_healthy(names=names)
    elif action == "supervise":
        Supervisor().run()
    elif action == "start":
        start(*names)
    elif action in ("down", "stop"):
        if action == "down":
            stop_supervisor()
        if "gateway" in names:  # stop taking requests first
            stop("gateway")
        stop(*names)
    elif action == "status":
        for name in names:
            pid = running_pid(name)
            restarts = _restart_count(name)
            last = _restarts(name).read_text().split(" ", 1)[1:] if restarts else []
            print(f"{name:13} {'running, pid ' + str(pid) if pid else 'stopped'}"
                  + (f", restarted {restarts}x (last after: {last[0]})" if restarts else ""))
        supervisor = running_pid("supervisor")
        print(f"{'supervisor':13} {'running, pid ' + str(supervisor) if supervisor else 'stopped'}")
    elif action == "health":
        status, body = health()
        print(json.dumps(body, indent=2))
        return 0 if status == 200 else 1
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
