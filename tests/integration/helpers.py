"""Small database and timing helpers the integration suites share."""
from __future__ import annotations

import time

from sqlalchemy import text


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
