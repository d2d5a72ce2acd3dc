"""The daily aging snapshot over RabbitMQ against the real database: taken when the portfolio
service starts if the institution's today (in its own zone) has none, exactly once however
many instances look, and on demand by an administrator.

Institution 8951 lives in a zone whose date is not UTC's right now (so a snapshot dated by
the server's clock would be caught); its three accounts, snapshots and rollups are made
for the module and removed after.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import eventlet
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from portfolio import aging
from portfolio.service import PortfolioService
from recaudo_common.db import make_engine
from recaudo_common.errors import NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import scalar, sql, wait_for

INST, OTHER = 8951, 8952
ACCOUNTS = [895_100_000 + n for n in (1, 2, 3)]


def _zone() -> str:
    """A zone whose date differs from UTC's now (UTC+14 late in the UTC day, UTC-11 early)."""
    return "Pacific/Kiritimati" if datetime.now(timezone.utc).hour >= 10 else "Pacific/Pago_Pago"


def signed(permissions, institutions=(INST,)):
    return {"identity": sign(Identity(user_id=8950, username="aging", profile="Administrador",
                                      permissions=frozenset(permissions),
                                      institutions=institutions))}


def snapshots(engine, day=None):
    return scalar(engine, "SELECT count(*) FROM portfolio.aging_snapshots WHERE institution_id = :i"
                          " AND (CAST(:d AS date) IS NULL OR snapshot_date = :d)", i=INST, d=day)


@pytest.fixture(scope="module")
def institution(migrated_database, engine):
    zone = _zone()
    local_today = datetime.now(ZoneInfo(zone)).date()
    with engine.begin() as conn:
        for inst in (INST, OTHER):
            conn.execute(text(
                "INSERT INTO portfolio.institutions (id, code, name, time_zone) VALUES"
                " (:i, 'AGE' || :i, 'Aging ' || :i, :z) ON CONFLICT (id) DO UPDATE SET time_zone = :z"),
                {"i": inst, "z": zone})
        for n, account in enumerate(ACCOUNTS):
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name)"
                " VALUES (:d, :i, 'A' || :d, 'DEUDOR ' || :d)"), {"d": account, "i": INST})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, balance) VALUES (:d, :i, :d, 'AGE' || :d, 'Tarjeta', 3000)"),
                {"d": account, "i": INST})
            # due in 20 days, yesterday and 22 days ago by the institution's own date (the
            # server's current_date is a day off it, ahead or behind, by design)
            conn.execute(text(
                "INSERT INTO portfolio.instalments (account_id, number, due_date, amount)"
                " VALUES (:a, 1, :due, 1000)"),
                {"a": account, "due": local_today + timedelta(days=20 - 21 * n)})
    yield zone
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.aging_snapshots WHERE institution_id = :i"),
                     {"i": INST})
        conn.execute(text("DELETE FROM portfolio.aging_daily WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.aging_rolls WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"), {"ids": ACCOUNTS})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"), {"ids": ACCOUNTS})
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id IN (:a, :b)"),
                     {"a": INST, "b": OTHER})


@pytest.fixture
def today(institution, engine):
    """The institution's today, with no snapshot of it yet."""
    sql(engine, "DELETE FROM portfolio.aging_snapshots WHERE institution_id = :i", i=INST)
    day = datetime.now(ZoneInfo(institution)).date()
    assert day != datetime.now(timezone.utc).date()
    return day


@pytest.mark.startup_aging
def test_the_first_snapshot_is_taken_when_the_service_starts(today, engine, container_factory,
                                                             rabbit_config):
    container_factory(PortfolioService, rabbit_config).start()
    assert wait_for(lambda: snapshots(engine, today) == len(ACCOUNTS), 20)
    assert snapshots(engine) == len(ACCOUNTS)          # dated by the institution's zone only
    overdue = scalar(engine, "SELECT count(*) FROM portfolio.aging_snapshots WHERE"
                             " institution_id = :i AND days_past_due > 0", i=INST)
    assert overdue == 2                                 # aging refreshed before the snapshot


@pytest.mark.startup_aging      # calls the real finder itself
def test_two_instances_looking_at_once_take_it_once(today):
    """The second look waits for the first's snapshot and finds the day taken."""
    engine = make_engine(pool_size=2)
    now = datetime.now(timezone.utc)
    try:
        with Session(engine) as first:
            assert (INST, today) in aging.missing_snapshots(first, now)
            second = eventlet.spawn(_look, engine, now)
            eventlet.sleep(0.5)
            assert not second.dead                      # waiting on the first's lock
            aging.snapshot(first, today, INST)
            first.commit()
        assert (INST, today) not in second.wait()
    finally:
        engine.dispose()


def _look(engine, now):
    with Session(engine) as session:
        try:
            return aging.missing_snapshots(session, now)
        finally:
            session.rollback()


def test_an_administrator_takes_it_on_demand(today, engine, container_factory, rabbit_config,
                                             rpc_proxy):
    container_factory(PortfolioService, rabbit_config).start()
    admin = rpc_proxy(signed({"institutions.manage"})).portfolio
    taken = admin.snapshot_aging(INST)
    assert taken == {"institution_id": INST, "snapshot_date": today.isoformat(),
                     "accounts": len(ACCOUNTS)}
    assert admin.snapshot_aging(INST)["accounts"] == len(ACCOUNTS)   # retaken, not doubled
    assert snapshots(engine) == len(ACCOUNTS)
    with pytest.raises(NotFound):
        rpc_proxy(signed({"institutions.manage"}, (OTHER,))).portfolio.snapshot_aging(INST)
    with pytest.raises(PermissionDenied):
        rpc_proxy(signed({"portfolio.read_all"})).portfolio.snapshot_aging(INST)
    with pytest.raises(PermissionDenied):          # every institution: all-institution admins
        admin.snapshot_aging()
