"""The demo seeds reach every service that keeps a projection, as a user's work would:
the demo team is made through ``auth.save_team`` (its ``team_changed`` reaches the queues
service, so a strategy may use it), and the accounts the portfolio's seed wrote behind the
events reach the queues projection (``recaudo seed-live``). Real RabbitMQ and PostgreSQL.

The auth tables are truncated around the module (the demo users seeded inside), institution
8901 and its accounts are made for the module and removed after, and what the tests add to
the queues tables is deleted after.
"""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from auth import seed as auth_seed
from auth.service import AuthService
from messaging.service import MessagingService
from portfolio.models import Institution
from portfolio.service import PortfolioService
from queues import seed as queues_seed
from queues.service import QueuesService
from recaudo_common import demo
from recaudo_common.identity import Identity, sign

from .helpers import scalar, sql, wait_for

INST = 8901
ACCOUNTS = [890_100_000 + n for n in range(1, 8)]
AUTH_TABLES = ("users", "profiles", "teams", "team_members", "sessions", "api_tokens",
               "api_keys", "login_failures", "audit_log", "outbox")


def _truncate_auth(engine) -> None:
    sql(engine, "TRUNCATE " + ", ".join(f"auth.{t}" for t in AUTH_TABLES)
        + " RESTART IDENTITY CASCADE")


@pytest.fixture(scope="module")
def rows(migrated_database, engine):
    """The demo institutions (ids only) and institution 8901 with accounts written straight
    into the portfolio's tables, as the demo seed writes them (no event)."""
    before = {r[0] for r in sql(engine, "SELECT id FROM portfolio.institutions")}
    with engine.begin() as conn:
        conn.execute(insert(Institution).values(
            [{"id": i, "code": code, "name": name} for i, code, name in demo.INSTITUTIONS]
            + [{"id": INST, "code": "SEED8901", "name": "Semilla"}]).on_conflict_do_nothing())
        for account in ACCOUNTS:
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name)"
                " VALUES (:d, :i, 'S' || :d, 'DEUDOR ' || :d)"), {"d": account, "i": INST})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, balance, overdue_amount, days_past_due, stage)"
                " VALUES (:d, :i, :d, 'SEED' || :d, 'Tarjeta', 900, 300, 40, 'delinquent')"),
                {"d": account, "i": INST})
    _truncate_auth(engine)
    yield
    _truncate_auth(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM queues.account_facts WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"), {"ids": ACCOUNTS})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"), {"ids": ACCOUNTS})
        added = [i for i, _, _ in demo.INSTITUTIONS if i not in before] + [INST]
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id = ANY(:ids)"),
                     {"ids": added})


@pytest.fixture
def platform(rows, container_factory, rabbit_config, rpc_proxy):
    """Auth, portfolio, queues and messaging running; a proxy as ``recaudo seed-live`` has it."""
    for cls in (AuthService, PortfolioService, QueuesService, MessagingService):
        container_factory(cls, rabbit_config).start()
    return rpc_proxy({"identity": sign(Identity.system("seed"))}, timeout=60)


def test_the_demo_team_reaches_the_queues_service(platform, engine):
    auth_seed.seed_defaults()
    auth_seed.seed_demo()
    made = auth_seed.seed_live(platform)
    assert [t["name"] for t in made] == [demo.TEAM]
    team_id = made[0]["id"]
    try:
        members = {demo.USER_IDS["gestor1"], demo.USER_IDS["gestor2"]}
        assert wait_for(lambda: {r[0] for r in sql(
            engine, "SELECT agent_id FROM queues.team_members WHERE team_id = :t",
            t=team_id)} == members)
        saved = platform.queues.save_strategy({
            "institution_id": INST, "name": "Con el equipo de la demo", "queues": [{
                "name": "Todas", "conditions": {"all": []}, "team_id": team_id,
                "policy": "round_robin", "sort": [{"field": "account_id", "direction": "asc"}]}]})
        assert saved["queues"][0]["team_id"] == team_id
        assert auth_seed.seed_live(platform) == []   # a second seeding adds nothing
        assert scalar(engine, "SELECT count(*) FROM auth.teams") == 1
    finally:
        sql(engine, "DELETE FROM queues.strategies WHERE institution_id = :i", i=INST)
        sql(engine, "DELETE FROM queues.team_members WHERE team_id = :t", t=team_id)


def test_the_seeded_accounts_reach_the_queues_projection(platform, engine):
    def projected():
        return scalar(engine, "SELECT count(*) FROM queues.account_facts WHERE institution_id = :i",
                      i=INST)

    assert projected() == 0
    queues_seed.seed_live(platform, (INST,))
    assert projected() == len(ACCOUNTS)
    queues_seed.seed_live(platform, (INST,))       # a second seeding adds nothing
    assert projected() == len(ACCOUNTS)
