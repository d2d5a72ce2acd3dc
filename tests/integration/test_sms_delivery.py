"""The SMS hand-over's plumbing under a campaign's load, against PostgreSQL and a running
messaging container: the gateway is reached over kept-alive connections (counted at a small
sendsms stand-in that records each request's connection), and delivery reports - arriving
all at once, twice, or after a failed write - are written in batches, each moving its
message once; the hand-over of two instances sends nothing twice.
"""
from __future__ import annotations

import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import event

from messaging import crypto, sms, sms_delivery
from messaging.models import Base
from messaging.service import MessagingService
from recaudo_common.db import Database

from .conftest import SMS_CALLBACK_TEST_PORT
from .helpers import scalar, sql

INST = 8752
CALLBACK = f"http://127.0.0.1:{SMS_CALLBACK_TEST_PORT}"


class Gateway:
    """A sendsms stand-in on 127.0.0.1 speaking HTTP/1.1: each request's client port (its
    connection) and ``to`` recorded."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[tuple[int, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit
                to = parse_qs(urlsplit(self.path).query).get("to", [""])[0]
                with gateway.lock:
                    gateway.requests.append((self.client_address[1], to))
                body = b"0: Accepted for delivery"
                self.send_response(202)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/sendsms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def db(migrated_database, engine):
    sql(engine, "DELETE FROM messaging.sms_messages WHERE institution_id = :i", i=INST)
    sql(engine, "DELETE FROM messaging.sms_settings WHERE institution_id = :i", i=INST)
    yield Database.outside(Base, engine, "messaging")
    sql(engine, "DELETE FROM messaging.sms_messages WHERE institution_id = :i", i=INST)
    sql(engine, "DELETE FROM messaging.sms_settings WHERE institution_id = :i", i=INST)


@pytest.fixture
def gateway(db, engine):
    stand_in = Gateway()
    sql(engine, "INSERT INTO messaging.sms_settings (institution_id, gateway_url, username,"
                " password, inbound_token, sender_id) VALUES (:i, :u, 'u', :p, :t, '87520')",
        i=INST, u=stand_in.url, p=crypto.encrypt("p"), t=crypto.encrypt("t"))
    sms.close_pools()
    yield stand_in
    sms.close_pools()
    stand_in.stop()


def queue(engine, count: int) -> list[str]:
    return [str(r[0]) for r in sql(engine, """
        INSERT INTO messaging.sms_messages (uuid, institution_id, direction, phone, body,
            encoding, segments, language, state)
        SELECT gen_random_uuid(), :i, 'outbound', '5540' || lpad(g::text, 6, '0'), 'hola',
               'gsm7', 1, 'es', 'queued' FROM generate_series(1, :n) g
        RETURNING uuid""", i=INST, n=count)]


def test_a_batch_goes_to_the_gateway_on_kept_alive_connections(db, gateway, engine):
    queue(engine, 120)
    assert sms_delivery.deliver_batch(db, CALLBACK) == 120
    assert len(gateway.requests) == 120
    assert len({to for _port, to in gateway.requests}) == 120
    connections = {port for port, _to in gateway.requests}
    # one connection per message before: now at most one per concurrent sender
    assert len(connections) <= sms_delivery.CONCURRENCY
    assert scalar(engine, "SELECT count(*) FROM messaging.sms_messages WHERE institution_id = :i"
                          " AND state = 'sent' AND attempts = 1", i=INST) == 120
    # the next batch reuses them
    queue(engine, 40)
    assert sms_delivery.deliver_batch(db, CALLBACK) == 40
    assert {port for port, _to in gateway.requests[120:]} <= connections


def test_two_instances_handing_over_at_once_send_each_message_once(db, gateway, engine):
    queue(engine, 300)
    with ThreadPoolExecutor(2) as pool:
        claimed = list(pool.map(lambda _: sms_delivery.deliver_batch(db, CALLBACK, limit=300),
                                range(2)))
    assert sum(claimed) == 300
    sent = [to for _port, to in gateway.requests]
    assert len(sent) == len(set(sent)) == 300


@pytest.fixture
def service(db, container_factory, rabbit_config):
    container = container_factory(MessagingService, rabbit_config)
    container.start()
    return container


def report(public: str, status: int) -> int:
    try:
        with urllib.request.urlopen(f"{CALLBACK}/kannel/dlr?id={public}&status={status}",
                                    timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_campaigns_reports_are_written_in_batches_each_message_moved_once(
        service, gateway, engine):
    publics = queue(engine, 200)
    sql(engine, "UPDATE messaging.sms_messages SET state = 'sent' WHERE institution_id = :i",
        i=INST)
    updates = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().startswith("UPDATE messaging.sms_messages m SET state = r.state"):
            updates.append(1)
    event.listen(service_engine(service), "before_cursor_execute", count)
    # every message's report at once, half of them twice, one status-2 (failed) among them,
    # and one id that is nobody's
    calls = [(p, 1) for p in publics] + [(p, 1) for p in publics[:100]] + \
        [(publics[150], 2), (str(uuid.uuid4()), 1)]
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda c: report(*c), calls))
    assert answers[:-1] == [200] * (len(calls) - 1) and answers[-1] == 404
    states = dict(sql(engine, "SELECT state, count(*) FROM messaging.sms_messages"
                              " WHERE institution_id = :i GROUP BY state", i=INST))
    assert states == {"delivered": 200}   # a final state stays: the later "failed" moved nothing
    # far fewer statements than reports: they waited for each other's write
    assert 1 <= len(updates) < len(calls) // 3, len(updates)
    first = dict(sql(engine, "SELECT uuid::text, delivered_at FROM messaging.sms_messages"
                             " WHERE institution_id = :i", i=INST))
    assert report(publics[0], 1) == 200 and report(publics[0], 2) == 200   # Kannel again
    assert scalar(engine, "SELECT delivered_at FROM messaging.sms_messages WHERE uuid = :u",
                  u=publics[0]) == first[publics[0]]


def test_a_report_whose_write_failed_is_refused_and_written_when_sent_again(
        service, gateway, engine, monkeypatch):
    [public] = queue(engine, 1)
    real = sms_delivery.record_reports
    failures = [1]

    def flaky(db, reports):
        if failures:
            failures.pop()
            raise RuntimeError("the database went away")
        return real(db, reports)
    monkeypatch.setattr(sms_delivery, "record_reports", flaky)
    assert report(public, 1) == 500      # Kannel keeps it and calls again
    assert scalar(engine, "SELECT state FROM messaging.sms_messages WHERE uuid = :u",
                  u=public) == "queued"
    assert report(public, 1) == 200
    assert scalar(engine, "SELECT state FROM messaging.sms_messages WHERE uuid = :u",
                  u=public) == "delivered"


def service_engine(container):
    return next(d for d in container.extensions if isinstance(d, Database)).engine


def test_the_report_statement_moves_only_our_outbound_messages(db, engine):
    [public] = queue(engine, 1)
    inbound = str(uuid.uuid4())
    sql(engine, "INSERT INTO messaging.sms_messages (uuid, institution_id, direction, phone,"
                " body, state) VALUES (:u, :i, 'inbound', '5511', 'x', 'received')",
        u=inbound, i=INST)
    assert sms_delivery.record_reports(db, [(public, 8), (inbound, 1)]) == {public}
    assert scalar(engine, "SELECT state FROM messaging.sms_messages WHERE uuid = :u",
                  u=public) == "queued"   # 8 (accepted by the SMSC) says nothing new
    assert scalar(engine, "SELECT state FROM messaging.sms_messages WHERE uuid = :u",
                  u=inbound) == "received"
    assert sms_delivery.record_reports(db, [(public, 16)]) == {public}
    assert scalar(engine, "SELECT last_error FROM messaging.sms_messages WHERE uuid = :u",
                  u=public) == "La red informó que no se entregó (DLR 16)"
