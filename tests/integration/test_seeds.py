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

from activities import chain
from activities import seed as activities_seed
from activities.service import ActivitiesService
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
ACCOUNTS = [890_100_000 + n for n in range(1, 41)]
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
        conn.execute(text("DELETE FROM queues.team_members WHERE team_id NOT IN "
                          "(SELECT id FROM auth.teams)"))
        conn.execute(text("DELETE FROM queues.strategies WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM queues.assignments WHERE account_id = ANY(:ids)"),
                     {"ids": ACCOUNTS})
        conn.execute(text("DELETE FROM queues.account_facts WHERE institution_id = :i"), {"i": INST})
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"), {"ids": ACCOUNTS})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"), {"ids": ACCOUNTS})
        added = [i for i, _, _ in demo.INSTITUTIONS if i not in before] + [INST]
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id = ANY(:ids)"),
                     {"ids": added})


@pytest.fixture
def platform(rows, container_factory, rabbit_config, rpc_proxy):
    """Auth, portfolio, queues and messaging running; a proxy as ``recaudo seed-live`` has it."""
    for cls in (AuthService, PortfolioService, QueuesService, MessagingService, ActivitiesService):
        container_factory(cls, rabbit_config).start()
    return rpc_proxy({"identity": sign(Identity.system("seed"))}, timeout=60)


def test_the_demo_team_reaches_the_queues_service(platform, engine):
    auth_seed.seed_defaults()
    auth_seed.seed_demo()
    made = auth_seed.seed_live(platform)
    assert [t["name"] for t in made] == list(demo.TEAMS.values())
    team_id = made[0]["id"]
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
    assert scalar(engine, "SELECT count(*) FROM auth.teams") == len(demo.TEAMS)


def test_the_seeded_accounts_reach_the_queues_projection_and_a_strategy_works_them(
        platform, engine):
    """After the team (previous test): seed-live projects the accounts, saves the demo
    strategy (six queues served by the demo team) and applies it, once."""
    def projected():
        return scalar(engine, "SELECT count(*) FROM queues.account_facts WHERE institution_id = :i",
                      i=INST)

    assert projected() == 0
    queues_seed.seed_live(platform, (INST,))
    assert projected() == len(ACCOUNTS)
    [strategy] = [s for s in platform.queues.list_strategies(INST)
                  if s["name"] == queues_seed.STRATEGY]
    assert len(platform.queues.get_strategy(strategy["id"])["queues"]) == len(queues_seed.QUEUES)
    assigned = scalar(engine, "SELECT count(*) FROM queues.assignments WHERE account_id = ANY(:a)",
                      a=ACCOUNTS)
    assert assigned == len(ACCOUNTS)               # 40 days past due: the 31–90 queue
    strategies = scalar(engine, "SELECT count(*) FROM queues.strategies WHERE institution_id = :i",
                        i=INST)
    queues_seed.seed_live(platform, (INST,))       # a second seeding adds nothing
    assert projected() == len(ACCOUNTS)
    assert scalar(engine, "SELECT count(*) FROM queues.strategies WHERE institution_id = :i",
                  i=INST) == strategies


def test_the_demo_past_is_written_through_the_activities_functions_and_events(platform, engine):
    """After the strategy (previous test): about a third of the accounts in arrears get a
    past of entries whose chains verify; their events reach the queues projection; a second
    seeding adds nothing."""
    made = activities_seed.seed_live(platform, (INST,))
    try:
        assert made[INST]["activities"] > 0
        entries = sql(engine, "SELECT account_id, kind, result_code FROM activities.activities "
                              "WHERE institution_id = :i", i=INST)
        assert len(entries) == made[INST]["activities"]
        assert {e.kind for e in entries} >= {"call"}
        # the promises are counted in the rollup rows of the entries that made them
        assert sql(engine, "SELECT sum(promises_made)::bigint, sum(promised_amount) "
                           "FROM activities.productivity_daily WHERE institution_id = :i",
                   i=INST) == sql(engine, "SELECT count(*), sum(amount) FROM activities.promises "
                                          "WHERE institution_id = :i", i=INST)
        worked = {e.account_id for e in entries}
        with engine.connect() as conn:
            from sqlalchemy.orm import Session

            with Session(bind=conn) as session:
                assert all(chain.verify(session, a)["ok"] for a in worked)
        assert wait_for(lambda: scalar(
            engine, "SELECT count(*) FROM queues.account_facts WHERE institution_id = :i AND "
                    "last_contact_at IS NOT NULL", i=INST) == len(worked), 30)
        assert activities_seed.seed_live(platform, (INST,)) == {}
        assert scalar(engine, "SELECT count(*) FROM activities.activities WHERE institution_id = :i",
                      i=INST) == len(entries)
    finally:
        _forget_activities(engine)


def _forget_activities(engine) -> None:
    """The test institution's demo past removed (the log is append-only for the service: the
    trigger is skipped for this cleanup only)."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in ("agenda_items", "promise_instalments", "promises", "disputes",
                      "productivity_daily", "activities", "chain_heads"):
            column = "promise_id IN (SELECT id FROM activities.promises WHERE institution_id = :i)" \
                if table == "promise_instalments" else "institution_id = :i"
            conn.execute(text(f"DELETE FROM activities.{table} WHERE {column}"), {"i": INST})


def test_demo_seeding_on_a_database_with_real_data_is_refused_and_writes_nothing(rows, engine):
    """Institution 8901 is not the demo's: ``recaudo seed`` in demo mode says so and stops."""
    import os
    import subprocess
    import sys

    tables = ("auth.users", "auth.profiles", "portfolio.institutions", "portfolio.debtors",
              "portfolio.statuses", "activities.result_codes", "messaging.templates")

    def counts():
        return {t: scalar(engine, f"SELECT count(*) FROM {t}") for t in tables}

    before = counts()
    proc = subprocess.run([sys.executable, "-m", "recaudo_common.cli", "seed"],
                          env={**os.environ, "RECAUDO_DEMO": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "RECAUDO_DEMO" in proc.stderr and "SEED8901" in proc.stderr
    assert "No se sembró nada" in proc.stderr
    assert counts() == before


#: accounts of demo institution 2 (Credimás) assigned to gestor1, one debtor each
FOLDER_ACCOUNTS = [890_200_000 + n for n in range(1, 4)]


@pytest.fixture
def gestor_accounts(rows, engine):
    """Three debtors of Credimás whose accounts are gestor1's (written as the demo seed
    writes them), removed after with whatever the documents seed made for them."""
    with engine.begin() as conn:
        for account in FOLDER_ACCOUNTS:
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name)"
                " VALUES (:d, 2, 'F' || :d, 'DEUDORA ' || :d)"), {"d": account})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, balance, overdue_amount, days_past_due, stage, assigned_agent_id)"
                " VALUES (:d, 2, :d, 'F' || :d, 'Préstamo', 12000, 2500, 75, 'delinquent', :g)"),
                {"d": account, "g": demo.USER_IDS["gestor1"]})
    yield FOLDER_ACCOUNTS
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM documents.versions WHERE document_id IN (SELECT id FROM "
                          "documents.documents WHERE debtor_id = ANY(:ids))"), {"ids": FOLDER_ACCOUNTS})
        conn.execute(text("DELETE FROM documents.documents WHERE debtor_id = ANY(:ids)"),
                     {"ids": FOLDER_ACCOUNTS})
        conn.execute(text("DELETE FROM documents.outbox WHERE (payload->>'debtor_id')::bigint"
                          " = ANY(:ids)"), {"ids": FOLDER_ACCOUNTS})
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"),
                     {"ids": FOLDER_ACCOUNTS})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"),
                     {"ids": FOLDER_ACCOUNTS})


def test_the_demo_documents_are_uploaded_once_through_the_documents_service(
        s3_server, gestor_accounts, platform, container_factory, rabbit_config, rpc_proxy,
        engine):
    """seed-live puts PDFs and images in the folders of gestor1's debtors as gestor1, through
    request_upload, the presigned POST and complete_upload (each one a version the service
    sniffed and an event in its outbox); gestor1 reads and downloads them; a second seeding
    adds nothing."""
    import requests

    from documents import seed as documents_seed
    from documents.service import DocumentsService

    container_factory(DocumentsService, rabbit_config).start()
    auth_seed.seed_defaults()
    auth_seed.seed_demo()
    made = documents_seed.seed_live(platform, (2,), nameko_config=rabbit_config)
    files = len(documents_seed.FILES) + 2 * (len(gestor_accounts) - 1)
    assert made == {2: files}
    versions = sql(engine, "SELECT d.debtor_id, v.content_type, v.uploaded_by, v.upload_id "
                           "FROM documents.documents d JOIN documents.versions v "
                           "ON v.document_id = d.id WHERE d.debtor_id = ANY(:ids)",
                   ids=gestor_accounts)
    assert len(versions) == files
    assert {v.debtor_id for v in versions} == set(gestor_accounts)
    assert {v.content_type for v in versions} == {"application/pdf", "image/png", "image/jpeg"}
    assert {v.uploaded_by for v in versions} == {demo.USER_IDS["gestor1"]}
    assert all(v.upload_id for v in versions)          # each one a completed upload
    assert scalar(engine, "SELECT count(*) FROM documents.outbox WHERE event_type = "
                          "'document_added' AND (payload->>'debtor_id')::bigint = ANY(:ids)",
                  ids=gestor_accounts) == files

    identity = platform.auth.identity_for(demo.USER_IDS["gestor1"])["identity"]
    gestor1 = rpc_proxy({"identity": identity}, timeout=30)
    folder = gestor1.documents.folder(gestor_accounts[0])
    assert {d["name"] for d in folder["items"]} == {f[0] for f in documents_seed.FILES}
    pdf = next(d for d in folder["items"] if d["latest"]["content_type"] == "application/pdf")
    link = gestor1.documents.download_url(pdf["latest"]["id"])
    body = requests.get(link["url"], timeout=10).content
    assert body.startswith(b"%PDF-") and len(body) == pdf["latest"]["size"]

    assert documents_seed.seed_live(platform, (2,), nameko_config=rabbit_config) == {}
    assert scalar(engine, "SELECT count(*) FROM documents.versions v JOIN documents.documents d"
                          " ON d.id = v.document_id WHERE d.debtor_id = ANY(:ids)",
                  ids=gestor_accounts) == files
