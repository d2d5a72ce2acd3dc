"""Small database and timing helpers the integration suites share, and those of the
tests with several instances of a service (``@pytest.mark.instances(2)``)."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import eventlet
from nameko.testing.services import entrypoint_hook
from sqlalchemy import text

from recaudo_common.config import settings

#: the figures of the tests with two instances, for a scale-out change's closing note
EVIDENCE = Path(__file__).resolve().parents[2] / settings().var_dir / "reports" / "two-instances.json"


def sql(engine, statement: str, **params):
    """Run one statement in its own transaction; its rows, if it returns any."""
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return result.all() if result.returns_rows else None


def scalar(engine, statement: str, **params):
    return sql(engine, statement, **params)[0][0]


def wait_for(predicate, seconds=10.0):
    """Poll ``predicate`` until it holds or ``seconds`` pass (events travel the broker)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def record(section: str, figures: dict) -> None:
    """Keep ``figures`` under ``section`` in the evidence file (and print them)."""
    EVIDENCE.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(EVIDENCE.read_text()) if EVIDENCE.exists() else {}
    data[section] = figures
    EVIDENCE.write_text(json.dumps(data, indent=2, sort_keys=True))
    print(f"\n{section}: {json.dumps(figures, sort_keys=True)}")


def handled_per_instance(containers) -> list[Counter]:
    """Per container, how many workers of each entrypoint it ran (a counter around
    nameko's ``spawn_worker``; the work itself is the real one)."""
    counters = []
    for container in containers:
        counter, spawn = Counter(), container.spawn_worker

        def spawn_counted(entrypoint, *args, _spawn=spawn, _counter=counter, **kwargs):
            _counter[entrypoint.method_name] += 1
            return _spawn(entrypoint, *args, **kwargs)

        container.spawn_worker = spawn_counted
        counters.append(counter)
    return counters


def fire_together(containers, timer: str) -> list:
    """Run entrypoint ``timer`` on every instance at the same moment; their results."""
    def fire(container):
        with entrypoint_hook(container, timer) as hook:
            return hook()

    return list(eventlet.GreenPool(len(containers)).imap(fire, containers))


def counting(monkeypatch, module, function: str) -> list:
    """Record each call of ``module.function`` and what it returned (the real call)."""
    calls, real = [], getattr(module, function)

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(result)
        return result

    monkeypatch.setattr(module, function, spy)
    return calls
