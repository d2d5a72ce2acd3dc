"""The messaging suites' world: institutions, debtors and mailboxes in the database, the services in containers, callers signed as each user, and the helpers that set up sending and read what was sent and logged (shared by test_messaging and test_messaging_compliance)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from nameko.testing.services import entrypoint_hook
from sqlalchemy import text

from activities.service import ActivitiesService
from messaging import attachments, delivery, idle
from messaging.service import MessagingService
from portfolio.models import Base as PortfolioBase
from portfolio.service import PortfolioService
from recaudo_common.db import Database
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign

from .helpers import fire_together, record, scalar, sql, wait_for

INST, OTHER = 8701, 8702
D1, D2, D3 = 870_000_001, 870_000_002, 870_000_003     # debtors (and their accounts)
ACC_D1_2 = 870_000_011                                  # D1's second account
GESTOR, ADMIN = 8711, 8799
TABLES = ("inbound_messages", "outbound_messages", "institution_settings", "match_patterns",
          "templates", "mailboxes", "outbox", "processed_events")
USER, PASSWORD = "cobranza@recaudo.test", "buzon-secreto-1"


def signed(user_id, permissions, institutions=(INST,), profile="Gestor"):
    return {"identity": sign(Identity(user_id=user_id, username=f"user{user_id}", profile=profile,
                                      permissions=frozenset(permissions),
                                      institutions=institutions))}


GESTOR_PERMS = {"portfolio.read", "activities.read", "activities.log", "messaging.send",
                "documents.read"}


class QuietPortfolioService(PortfolioService):
    """Without its outbox relay: other suites' unpublished portfolio events stay put."""

    db = Database(PortfolioBase, relay=False)


@pytest.fixture(scope="module")
def portfolio_rows(migrated_database, engine):
    with engine.begin() as conn:
        for inst in (INST, OTHER):
            conn.execute(text(
                "INSERT INTO portfolio.institutions (id, code, name, contact_from, contact_until,"
                " jurisdiction) VALUES (:i, 'MSG' || :i, 'Banco ' || :i, '00:00', '23:59:59', 'ZZ')"
                " ON CONFLICT (id) DO UPDATE SET contact_from = '00:00', contact_until = '23:59:59',"
                " jurisdiction = 'ZZ'"),
                {"i": inst})
        debtors = ((D1, INST, "ana@cliente.test"), (D2, INST, "beto@cliente.test"),
                   (D3, OTHER, "ana@cliente.test"))
        for debtor, inst, email in debtors:
            conn.execute(text(
                "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name, time_zone)"
                " VALUES (:d, :i, 'CUST' || :d, 'DEUDOR ' || :d, 'America/Mexico_City')"),
                {"d": debtor, "i": inst})
            conn.execute(text("INSERT INTO portfolio.emails (debtor_id, address) VALUES (:d, :e)"),
                         {"d": debtor, "e": email})
            conn.execute(text(
                "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                " product, balance, overdue_amount, days_past_due, stage, assigned_agent_id)"
                " VALUES (:d, :i, :d, 'ACC' || :d, 'Tarjeta', 15230.50, 3200, 40, 'delinquent', :g)"),
                {"d": debtor, "i": inst, "g": GESTOR})
        conn.execute(text(
            "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
            " product, balance, days_past_due, stage, assigned_agent_id)"
            " VALUES (:a, :i, :d, '55667788', 'Auto', 900, 5, 'delinquent', :g)"),
            {"a": ACC_D1_2, "i": INST, "d": D1, "g": GESTOR})
        conn.execute(text("INSERT INTO portfolio.emails (debtor_id, address, do_not_contact)"
                          " VALUES (:d, 'no-molestar@cliente.test', true)"), {"d": D2})
        conn.execute(text("INSERT INTO portfolio.phones (debtor_id, number, kind, do_not_call)"
                          " VALUES (:d, '5599990000', 'fax', true)"), {"d": D2})
    yield
    ids = [D1, D2, D3, ACC_D1_2]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM portfolio.accounts WHERE id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM portfolio.debtors WHERE id = ANY(:ids)"), {"ids": ids})
        conn.execute(text("DELETE FROM portfolio.institutions WHERE id IN (:a, :b)"),
                     {"a": INST, "b": OTHER})


def _truncate(engine):
    sql(engine, "TRUNCATE " + ", ".join(f"messaging.{t}" for t in TABLES)
        + " RESTART IDENTITY CASCADE")


@pytest.fixture
def mail(imap_server, smtp_sink):
    """A fresh IMAP account for the test (its INBOX empty) and an empty sink."""
    imap_server.add_user(USER, PASSWORD)
    client = IMAPClient("127.0.0.1", port=imap_server.port, ssl=False, timeout=20)
    client.login(USER, PASSWORD)
    for folder in ("INBOX", "Recaudo"):
        if client.folder_exists(folder):
            client.select_folder(folder)
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()
            client.unselect_folder() if hasattr(client, "unselect_folder") else None
    if client.folder_exists("Recaudo"):
        client.delete_folder("Recaudo")
    smtp_sink.clear()
    yield client
    client.logout()


@pytest.fixture
def services(portfolio_rows, engine, container_factory, rabbit_config, mail, monkeypatch):
    _truncate(engine)
    monkeypatch.setattr(delivery, "BACKOFF", 0.3)
    monkeypatch.setattr(idle, "RESCAN_SECONDS", 0.5)
    container_factory(QuietPortfolioService, rabbit_config).start()
    container_factory(ActivitiesService, rabbit_config).start()
    container = container_factory(MessagingService, rabbit_config)
    container.start()
    yield container
    _truncate(engine)


@pytest.fixture
def admin(services, rpc_proxy):
    return rpc_proxy(signed(ADMIN, {"*"}, None, "Administrador")).messaging


@pytest.fixture
def gestor(services, rpc_proxy):
    return rpc_proxy(signed(GESTOR, GESTOR_PERMS)).messaging


def mailbox_data(imap_server, smtp_sink, **extra):
    return {"institution_id": INST, "name": "Cobranza", "address": USER,
            "imap_host": "127.0.0.1", "imap_port": imap_server.port, "imap_tls": False,
            "imap_user": USER, "imap_password": PASSWORD, "smtp_host": "127.0.0.1",
            "smtp_port": smtp_sink.port, "smtp_security": "none", **extra}


TEMPLATE = {"institution_id": INST, "name": "Recordatorio",
            "subject_es": "Recordatorio de pago, cuenta {{ account.account_number }}",
            "text_es": "Estimado(a) {{ debtor.name }}:\n\nSu saldo es de ${{ account.balance|money }}"
                       " {{ account.currency }}.\n\nAtentamente,\n{{ institution.name }}",
            "subject_en": "Payment reminder, account {{ account.account_number }}",
            "text_en": "Dear {{ debtor.name }},\n\nYour balance is ${{ account.balance|money }}."}


def email(sender, subject, body="Hola", message_id=None, **headers) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = USER
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 -0600"
    msg["Message-ID"] = message_id or f"<{time.time_ns()}@cliente.test>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def rows(engine, table="inbound_messages", order="id"):
    return [dict(r._mapping) for r in sql(engine, f"SELECT * FROM messaging.{table} ORDER BY {order}")]


def events(engine, kind):
    return [p for (p,) in sql(engine, "SELECT payload FROM messaging.outbox WHERE event_type = :t"
                                      " ORDER BY id", t=kind)]


def activities_of(engine, account_id):
    return [dict(r._mapping) for r in sql(
        engine, "SELECT * FROM activities.activities WHERE account_id = :a ORDER BY id",
        a=account_id)]


# --- inbound -----------------------------------------------------------------------------------


def _setup_sending(admin, imap_server, smtp_sink):
    box = admin.save_mailbox(mailbox_data(imap_server, smtp_sink))
    template = admin.save_template(TEMPLATE)
    admin.save_settings(INST, {"fax_domain": "fax.recaudo.test", "default_mailbox_id": box["id"]})
    return box, template
