"""Several instances of a service with the local runner (``make up SCALE=...``): each with
its own pid and log files, listed by ``status``, serving the service's RPCs when the
first instance is gone, and stopped again by an ``up`` without the scale."""
from __future__ import annotations

import subprocess

from tests import stack as runner


def _status() -> dict[str, str]:
    return {line.split()[0]: line for line in runner.status().splitlines() if line.strip()}


def test_up_with_a_scale_starts_instances_that_serve_and_up_without_it_stops_them(stack):
    runner.up("queues=2 activities=2")
    try:
        status = _status()
        for name in ("queues-2", "activities-2"):
            assert "running, pid" in status[name], status
            assert (stack.var_dir / "run" / f"{name}.pid").exists()
            assert (stack.var_dir / "log" / f"{name}.log").exists()
        names = list(status)
        assert names.index("queues-2") == names.index("queues") + 1   # listed with its service
        with stack.stopped("queues"):   # the first instance gone: the second one answers
            body = stack.wait_healthy()
            assert body["services"]["queues"]["status"] == "ok"
    finally:
        runner.up()                     # the scale asked is the scale: one of each again
    status = _status()
    assert "queues-2" not in status and "activities-2" not in status, status
    assert not (stack.var_dir / "run" / "queues-2.pid").exists()
    assert "running" in status["queues"]


def test_up_refuses_a_scale_of_zero_or_an_unknown_service_and_starts_nothing(stack):
    for spec, says in (("queues=0", "cannot scale queues to '0'"),
                       ("cobros=2", "cannot scale 'cobros'")):
        proc = subprocess.run([runner.PYTHON, str(runner.RUNNER), "up", "--scale", spec],
                              capture_output=True, text=True, cwd=runner.ROOT, timeout=60)
        assert proc.returncode != 0 and says in proc.stderr, proc.stderr
    assert not list((stack.var_dir / "run").glob("*-[0-9].pid"))
