"""Mailbox sync through the running stack (``make bench``):

    raw imapclient   FETCH BODY.PEEK[] of every message of the folder, in batches of 250,
                     on one connection (what any sync must at least do)
    sync             the messaging service's sync of the same folder (RPC sync_mailbox):
                     FETCH in batches, parse, match each sender against the debtors'
                     addresses (one portfolio RPC per batch), commit the rows and the last
                     UID per batch, then log each matched message as an inbound email
                     activity (activities RPC, hash chain, rollup, outbox)
    resume           a second sync of the unchanged folder (nothing new: the last UID)

10,000 messages are APPENDed (MULTIAPPEND, 500 per command) to a folder of the stack's
demo IMAP account, each from one of 200 debtors of a benchmark institution, so every one
matches. Reports messages/s; like every benchmark here it does not fail on speed.
Everything created is removed at the end (the log's append-only trigger is bypassed for
that cleanup only).
"""
from __future__ import annotations

import os
import threading
import time
from email.message import EmailMessage

import psycopg
import pytest
from imapclient import IMAPClient
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy.engine import make_url

from recaudo_common.config import settings
from recaudo_common.identity import Identity, sign

from .bench import vacuum

#: RECAUDO_BENCH_MESSAGES runs a smaller mailbox (a quick check of the benchmark itself)
MESSAGES = int(os.environ.get("RECAUDO_BENCH_MESSAGES", "10000"))
DEBTORS = 200
INSTITUTION = 9008
BASE = 908_000_000
USER, PASSWORD = "cobranza@recaudo.demo", "recaudo-demo"   # the runner's demo IMAP account
FOLDER = "Bench"
FETCH_BATCH = 250


def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


@pytest.fixture(scope="module")
def db():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        yield conn


def _imap() -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=settings().local_imap_port, ssl=False, timeout=120)
    client.login(USER, PASSWORD)
    return client


def cleanup(db) -> None:
    i = INSTITUTION
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")  # the append-only trigger
        for statement in (
                "DELETE FROM messaging.inbound_messages WHERE institution_id = %s",
                "DELETE FROM messaging.mailboxes WHERE institution_id = %s",
                "DELETE FROM activities.productivity_daily WHERE institution_id = %s",
                "DELETE FROM activities.chain_heads WHERE institution_id = %s",
                "DELETE FROM activities.activities WHERE institution_id = %s",
                "DELETE FROM activities.result_codes WHERE institution_id = %s",
                "DELETE FROM activities.institution_settings WHERE institution_id = %s",
                "DELETE FROM portfolio.emails WHERE debtor_id IN "
                "(SELECT id FROM portfolio.debtors WHERE institution_id = %s)",
                "DELETE FROM portfolio.accounts WHERE institution_id = %s",
                "DELETE FROM portfolio.debtors WHERE institution_id = %s",
                "DELETE FROM portfolio.institutions WHERE id = %s"):
            db.execute(statement, [i])
    client = _imap()
    try:
        if client.folder_exists(FOLDER):
            client.delete_folder(FOLDER)
    finally:
        client.logout()
    vacuum(db, "messaging", "activities", "portfolio")


def setup_world(db) -> None:
    db.execute("INSERT INTO portfolio.institutions (id, code, name) VALUES (%s, 'BENCHMSG', "
               "'Benchmark correo') ON CONFLICT (id) DO NOTHING", [INSTITUTION])
    params = {"base": BASE, "i": INSTITUTION, "n": DEBTORS}
    db.execute("""INSERT INTO portfolio.debtors (id, institution_id, customer_number, name)
                  SELECT %(base)s + g, %(i)s, 'BM' || g, 'DEUDOR BENCH ' || g
                  FROM generate_series(1, %(n)s) g""", params)
    db.execute("""INSERT INTO portfolio.emails (debtor_id, address)
                  SELECT %(base)s + g, 'deudor' || g || '@bench.test'
                  FROM generate_series(1, %(n)s) g""", params)
    db.execute("""INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,
                                                  product, balance, stage)
                  SELECT %(base)s + g, %(i)s, %(base)s + g, 'BM' || g, 'Tarjeta', 5000,
                         'delinquent' FROM generate_series(1, %(n)s) g""", params)


def append_messages() -> float:
    client = _imap()
    started = time.perf_counter()
    try:
        client.create_folder(FOLDER)
        batch = []
        for n in range(MESSAGES):
            msg = EmailMessage()
            msg["From"] = f"Deudor {n % DEBTORS + 1} <deudor{n % DEBTORS + 1}@bench.test>"
            msg["To"], msg["Subject"] = USER, f"Pago {n}"
            msg["Message-ID"] = f"<bench-{n}-{time.time_ns()}@bench.test>"
            msg.set_content(f"Mensaje de prueba número {n}.\n" + "Texto de relleno. " * 40)
            batch.append(msg.as_bytes())
            if len(batch) == 500:
                client.multiappend(FOLDER, batch)
                batch = []
        if batch:
            client.multiappend(FOLDER, batch)
    finally:
        client.logout()
    return time.perf_counter() - started


def raw_fetch() -> tuple[float, int, int]:
    client = _imap()
    try:
        client.select_folder(FOLDER, readonly=True)
        started = time.perf_counter()
        uids = client.search(["ALL"])
        size = 0
        for start in range(0, len(uids), FETCH_BATCH):
            for data in client.fetch(uids[start:start + FETCH_BATCH], ["BODY.PEEK[]"]).values():
                size += len(data[b"BODY[]"])
        return time.perf_counter() - started, len(uids), size
    finally:
        client.logout()


def test_sync_of_a_10000_message_mailbox(stack_url, db):
    cleanup(db)
    setup_world(db)
    try:
        appended = append_messages()
        raw_seconds, fetched, size = raw_fetch()
        admin = Identity(user_id=0, username="bench", profile="Administrador",
                         permissions=frozenset({"*"}), institutions=None)
        with ClusterRpcProxy(settings().nameko, timeout=3600,
                             context_data={"identity": sign(admin, ttl=3600)}) as proxy:
            mailbox = proxy.messaging.save_mailbox({
                "institution_id": INSTITUTION, "name": "Bench", "address": USER,
                "imap_host": "127.0.0.1", "imap_port": settings().local_imap_port,
                "imap_tls": False, "imap_user": USER, "imap_password": PASSWORD,
                "imap_folder": FOLDER, "smtp_host": "127.0.0.1",
                "smtp_port": settings().local_smtp_port, "smtp_security": "none"})
            stored_at = {}

            def watch_rows():
                """When every message is a committed row (before the activities are logged)."""
                with psycopg.connect(_dsn(), autocommit=True) as conn:
                    while "done" not in stored_at:
                        count = conn.execute("SELECT count(*) FROM messaging.inbound_messages"
                                             " WHERE institution_id = %s", [INSTITUTION]
                                             ).fetchone()[0]
                        if count >= MESSAGES and "rows" not in stored_at:
                            stored_at["rows"] = time.perf_counter()
                        time.sleep(0.05)

            watcher = threading.Thread(target=watch_rows, daemon=True)
            watcher.start()
            started = time.perf_counter()
            result = proxy.messaging.sync_mailbox(mailbox["id"])
            sync_seconds = time.perf_counter() - started
            stored_at["done"] = True
            watcher.join()
            rows_seconds = stored_at.get("rows", started + sync_seconds) - started
            started = time.perf_counter()
            again = proxy.messaging.sync_mailbox(mailbox["id"])
            resume_seconds = time.perf_counter() - started
        matched = db.execute("SELECT count(*), count(activity_id) FROM messaging.inbound_messages"
                             " WHERE institution_id = %s", [INSTITUTION]).fetchone()
        rows = [("raw imapclient FETCH", fetched, raw_seconds),
                ("sync: fetch, parse, match, store rows", result.get("new", 0), rows_seconds),
                ("sync: ... and log the activities", result.get("new", 0), sync_seconds),
                ("resume (nothing new)", again.get("fetched", 0), resume_seconds)]
        width = max(len(r[0]) for r in rows)
        print(f"\nmailbox sync, {MESSAGES} messages ({size / 1048576:.1f} MB; APPEND took "
              f"{appended:.1f} s)")
        print(f"{'path':<{width}}  {'messages':>8}  {'seconds':>8}  {'msg/s':>8}")
        for label, count, seconds in rows:
            rate = count / seconds if seconds and count else 0
            print(f"{label:<{width}}  {count:>8}  {seconds:>8.2f}  {rate:>8.0f}")
        print(f"matched rows {matched[0]}, with their activity {matched[1]}; rows / raw = "
              f"{rows_seconds / raw_seconds:.1f}x, whole sync / raw = "
              f"{sync_seconds / raw_seconds:.1f}x; answer: {result}")
        assert result.get("new") == MESSAGES and matched == (MESSAGES, MESSAGES), result
        assert again.get("fetched") == 0
    finally:
        cleanup(db)
