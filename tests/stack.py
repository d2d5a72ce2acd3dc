"""The whole Recaudo stack for the suites that drive it from outside (e2e, perf).

A thin wrapper over ``deploy/runner.py`` (run as a subprocess with this process's
``RECAUDO_*`` environment), so the tests start and stop exactly what ``make up``
would, with the test settings ``make test`` / ``make bench`` export:

    up(scale="")   start S3, the services and the gateway; wait for /healthz
    down()         stop what ``up`` started (only the pids in <var>/run)
    stop(name)     stop one process (e.g. "auth") to test degradation
    start(name)    start it again (does not wait; poll ``base_url()`` yourself)
    service(name, env, log, checkout=None)
                   one service in the foreground of a subprocess, from another checkout's
                   sources if given (benchmarks: before and after in the same run)
    base_url()     "http://127.0.0.1:<gateway port>"

It refuses to run with the development ``var`` directory or gateway port: ``down`` at
the end of a test session would otherwise stop the developer's own ``make up`` stack
(or the tests would quietly talk to it).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from recaudo_common.config import Settings, settings

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "deploy" / "runner.py"
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON if _VENV_PYTHON.exists() else Path(sys.executable))
LOG_TAIL_LINES = 30


class StackError(RuntimeError):
    """The runner failed; the message carries its output and the logs' last lines."""


def _cfg() -> Settings:
    cfg, dev = settings(), Settings()
    if (ROOT / cfg.var_dir).resolve() == (ROOT / dev.var_dir).resolve() \
            or cfg.gateway_port == dev.gateway_port:
        raise StackError(
            "tests/stack.py: RECAUDO_VAR_DIR or RECAUDO_GATEWAY_PORT are the development "
            "ones; run through 'make test' / 'make bench' (or export the Makefile's "
            "TEST_ENV) so the tests never start, stop or measure the stack of 'make up'.")
    return cfg


def _runner(*args: str, timeout: float = 180.0) -> str:
    _cfg()
    proc = subprocess.run([PYTHON, str(RUNNER), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise StackError(f"runner {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stdout}{proc.stderr}{_log_tails()}")
    return proc.stdout


def _log_tails() -> str:
    logs = ROOT / settings().var_dir / "log"
    out = []
    for log in sorted(logs.glob("*.log")) if logs.is_dir() else ():
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        if lines:
            out.append(f"--- {log} (last {len(lines)} lines)\n" + "\n".join(lines))
    return "\n".join(out)


def up(scale: str = "") -> None:
    """Start every process (``scale``: ``"queues=2"``, that many instances; instances
    beyond it stop) and wait until /healthz answers 200; on failure stop them all
    again and raise StackError with the runner's message and the logs' tails."""
    try:
        _runner("up", *(["--scale", scale] if scale else []))
    except BaseException:
        try:
            down()
        except Exception:  # the first failure is the one worth reporting
            pass
        raise


def down() -> None:
    _runner("down")


def stop(name: str) -> None:
    _runner("stop", name)


def start(name: str) -> None:
    _runner("start", name)


def service(name: str, env: dict, log, checkout: str | None = None) -> subprocess.Popen:
    """``name`` run as ``recaudo_common.run`` does it, with ``env``, its output to ``log``;
    from ``checkout``'s sources (its services and gateway first on the path) if given."""
    if checkout:
        root = Path(checkout)
        paths = [str(d) for d in sorted((root / "services").iterdir()) if d.is_dir()]
        env = {**env, "PYTHONPATH": os.pathsep.join(paths + [str(root / "gateway")])}
    return subprocess.Popen([PYTHON, "-m", "recaudo_common.run", name], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def status() -> str:
    return _runner("status")


def base_url() -> str:
    cfg = _cfg()
    host = cfg.gateway_host if cfg.gateway_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"http://{host}:{cfg.gateway_port}"
