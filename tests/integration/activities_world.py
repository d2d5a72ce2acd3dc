"""The activities suites' world: two institutions' accounts in the portfolio, the services in containers, callers signed as each user, and the helpers that log calls and read the outbox (shared by test_activities, test_plan_limits, test_portal)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from activities import catalogue, seed
from activities import log as contact_log
from activities.service import ActivitiesService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from recaudo_common import contracts, demo
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import counting, fire_together, record, scalar, sql, wait_for

BASE = 880_000_000
ACC1 = [BASE + k for k in range(1, 7)]   # institution 1, assigned to GESTOR1
ACC2 = BASE + 50                         # institution 2, assigned to GESTOR2
GESTOR1, GESTOR2, GESTOR3, SUPERVISOR, ADMIN = 8801, 8802, 8803, 8850, 8899
TEAM = 88
ZONE = "America/Mexico_City"

TABLES = ("result_codes", "institution_settings", "activities", "chain_heads", "promises",
          "promise_instalments", "payments", "disputes", "agenda_items", "teams", "team_members",
          "ics_tokens", "productivity_daily", "outbox", "processed_events", "compliance_log",
          "debtor_preferences")
SEQUENCES = (("result_codes", "id"), ("activities", "id"), ("promises", "id"),
             ("disputes", "id"), ("agenda_items", "id"), ("outbox", "id"),
             ("compliance_log", "id"))
SAVED = "activities_test_saved"


# --- plumbing ----------------------------------------------------------------------------

def signed(user_id, permissions, institutions=(1,), team=(), profile="Gestor"):
    return {"identity": sign(Identity(user_id=user_id, username=f"user{user_id}", profile=profile,
                                      permissions=frozenset(permissions),
                                      institutions=institutions, team=tuple(team)))}


GESTOR_PERMS = {"portfolio.read", "queues.work", "activities.read", "activities.log"}
SUPERVISOR_PERMS = GESTOR_PERMS | {"portfolio.read_all", "disputes.manage", "reports.view",
                                   "queues.manage"}


def _restore(conn) -> None:
    conn.execute(text("TRUNCATE " + ", ".join(f"activities.{t}" for t in TABLES) + " CASCADE"))
    for table in TABLES:
        conn.execute(text(f"INSERT INTO activities.{table} SELECT * FROM {SAVED}.{table}"))
    for table, column in SEQUENCES:
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('activities.{table}', '{column}'),"
                          f" coalesce((SELECT max({column}) FROM activities.{table}), 0) + 1, false)"))
    conn.execute(text(f"DROP SCHEMA {SAVED} CASCADE"))


@pytest.fixture(scope="module")
def saved_tables(migrated_database, engine):
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"),
                        {"s": SAVED}).first():
            _restore(conn)
        conn.execute(text(f"CREATE SCHEMA {SAVED}"))
        for table in TABLES:
            conn.execute(text(f"CREATE TABLE {SAVED}.{table} AS TABLE activities.{table}"))
    yield
    with engine.begin() as conn:
        _restore(conn)


@pytest.fixture(scope="module")
def portfolio_rows(migrated_database, engine):
    """Institutions 1 and 2 (added if missing) with a 00:00-23:59:59 contact window (so
    only the contact-policy tests depend on the clock; their own window is put back after),
    a debtor per account, accounts assigned to the two collectors; all removed after."""
    added = []
    for institution_id, code in ((1, "ATEST1"), (2, "ATEST2")):
        if not sql(engine, "SELECT 1 FROM portfolio.institutions WHERE id = :i", i=institution_id):
            sql(engine, "INSERT INTO portfolio.institutions (id, code, name) VALUES (:i, :c, :c)",
                i=institution_id, c=code)
            added.append(institution_id)
    windows = sql(engine, "SELECT id, contact_from, contact_until, jurisdiction "
                          "FROM portfolio.institutions WHERE id IN (1, 2)")
    # no seeded jurisdiction: the default policy, the institution's window only
    sql(engine, "UPDATE portfolio.institutions SET contact_from = '00:00', "
                "contact_until = '23:59:59', jurisdiction = 'ZZ' WHERE id IN (1, 2)")
    rows = [(a, 1, GESTOR1) for a in ACC1] + [(ACC2, 2, GESTOR2)]
    with engine.begin() as conn:
        for account_id, institution_id, agent in rows:
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name, time_zone)"
                " VALUES (:a, :i, 'AT' || :a, 'DEUDOR ' || :a, :z)"),
                {"a": account_id, "i": institution_id, "z": ZONE})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, original_amount, balance, stage, assigned_agent_id)"
                " VALUES (:a, :i, :a, 'AT' || :a, 'Tarjeta', 9000, 5000, 'delinquent', :g)"),
                {"a": account_id, "i": institution_id, "g": agent})
    yield
    ids = [r[0] for r in rows]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"), {"ids": ids})
        for institution_id in added:
            conn.execute(text("DELETE FROM portfolio.institutions WHERE id = :i"),
                         {"i": institution_id})
        for institution_id, start, until, jurisdiction in windows:
            conn.execute(text("UPDATE portfolio.institutions SET contact_from = :f, "
                              "contact_until = :u, jurisdiction = :j WHERE id = :i"),
                         {"i": institution_id, "f": start, "u": until, "j": jurisdiction})


def _truncate(engine) -> None:
    sql(engine, "TRUNCATE " + ", ".join(f"activities.{t}" for t in TABLES)
        + " RESTART IDENTITY CASCADE")
    # the portfolio's projection of the agenda: every item id restarts with the tables, so
    # any holder left (by other suites or the demo seed) would stand for a new item
    sql(engine, "DELETE FROM portfolio.callback_holders")


class QuietPortfolioService(PortfolioService):
    """The portfolio service without its outbox relay (the database is shared with other
    suites, whose unpublished portfolio events must not reach this vhost)."""

    db = Database(PortfolioBase, relay=False)


@pytest.fixture
def services(saved_tables, portfolio_rows, engine, container_factory, rabbit_config):
    _truncate(engine)
    container_factory(QuietPortfolioService, rabbit_config).start()
    container_factory(ActivitiesService, rabbit_config).start()
    yield
    _truncate(engine)


@pytest.fixture
def as_user(services, rpc_proxy):
    cache = {}

    def make(user_id, permissions=GESTOR_PERMS, institutions=(1,), team=()):
        key = (user_id, frozenset(permissions), institutions, tuple(team))
        if key not in cache:
            cache[key] = rpc_proxy(signed(user_id, permissions, institutions, team)).activities
        return cache[key]
    return make


@pytest.fixture
def gestor1(as_user):
    return as_user(GESTOR1)


@pytest.fixture
def supervisor(as_user):
    return as_user(SUPERVISOR, SUPERVISOR_PERMS, None, (GESTOR1, GESTOR2, GESTOR3))


@pytest.fixture
def admin(as_user):
    return as_user(ADMIN, {"*"}, None)


def now():
    return datetime.now(timezone.utc)


def today():
    return catalogue.today_in(ZONE)


def call(account_id=ACC1[0], code="CT", minutes_ago=10, **extra):
    start = now() - timedelta(minutes=minutes_ago)
    return {"account_id": account_id, "kind": "call", "direction": "outbound",
            "phone": "5512345678", "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=3)).isoformat(), "result_code": code,
            "description": "Se habló con el titular", **extra}


def outbox(engine, event_type=None):
    rows = sql(engine, "SELECT event_type, payload FROM activities.outbox ORDER BY id")
    return [p for t, p in rows if event_type in (None, t)]


def counts(engine) -> dict:
    return {t: scalar(engine, f"SELECT count(*) FROM activities.{t}")
            for t in ("activities", "promises", "promise_instalments", "agenda_items", "outbox",
                      "productivity_daily", "disputes")}


def payment(account_id, amount, value_date, movement_id, institution_id=1):
    return contracts.PaymentReceived().dump({
        "event_id": uuid.uuid4(), "occurred_at": now(), "account_id": account_id,
        "institution_id": institution_id, "movement_id": movement_id,
        "amount": Decimal(amount), "value_date": value_date, "reference": f"PAGO-{movement_id}"})


# --- logging ---------------------------------------------------------------------------------
