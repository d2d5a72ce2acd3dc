"""Benchmarks run against the whole stack, started once per session by the local runner
with the test settings ``make bench`` exports (database recaudo_test, vhost recaudo_test,
gateway on 18080, var/test), and stopped at the end.

The process running the benchmarks is NOT eventlet-patched (no ``-p tests.eventlet_patch``):
load comes from plain threads, as it would from any HTTP or AMQP client.

Options (e.g. ``make bench ARGS="--bench-requests=500 --bench-seconds=5"``):
    --bench-requests   calls per cell at most (default 2000)
    --bench-seconds    time cap per cell (default 20)
    --bench-scale      instances per service, as ``make up SCALE=`` takes them
                       (e.g. "queues=2 activities=2"; default one of each)
"""
from __future__ import annotations

import pytest

from tests import stack

DEFAULT_REQUESTS = 2000
DEFAULT_SECONDS = 20.0


def pytest_addoption(parser):
    group = parser.getgroup("recaudo benchmarks")
    group.addoption("--bench-requests", type=int, default=DEFAULT_REQUESTS,
                    help="calls per benchmark cell at most (default %(default)s)")
    group.addoption("--bench-seconds", type=float, default=DEFAULT_SECONDS,
                    help="time cap per benchmark cell in seconds (default %(default)s)")
    group.addoption("--bench-scale", default="",
                    help='instances per service, e.g. "queues=2 activities=2" (default: one)')


@pytest.fixture(scope="session")
def bench_limits(pytestconfig) -> dict:
    """``requests`` and ``seconds`` for ``bench.measure``."""
    return {"requests": pytestconfig.getoption("--bench-requests", DEFAULT_REQUESTS),
            "seconds": pytestconfig.getoption("--bench-seconds", DEFAULT_SECONDS)}


@pytest.fixture(scope="session")
def stack_url(pytestconfig) -> str:
    """The gateway's base URL of a running, healthy stack (started here, stopped after)."""
    from eventlet import patcher

    # green "threads" would serialise the clients and block on psycopg's C wait
    assert not patcher.is_monkey_patched("thread"), \
        "run the benchmarks without -p tests.eventlet_patch: clients are real threads"
    stack.up(pytestconfig.getoption("--bench-scale", ""))
    try:
        yield stack.base_url()
    finally:
        stack.down()
