"""Two instances of every service, on the real broker and database (issue 23): what
``make up SCALE=...`` and a cluster's replicas rely on.

* RPCs are shared: both instances of each of the seven services answer under load;
* the outbox relays of two instances publish each row once, and an event delivered again
  (to either instance) takes effect once (the inbox);
* kill -9 of an instance under load loses no accepted event: its unacknowledged messages
  go to the other instance;
* a live dashboard's subscription (one per gateway process) sees the events whichever
  instance emitted them;
* each timer fired on both instances at once does its work once: the aging and assigned
  snapshots here; promise expiry (test_activities), the nightly rebuild and wake-ups
  (test_queues), mail delivery and sync (test_messaging), scheduled reports (test_reports),
  the upload sweep (test_documents), campaigns' runs and sends (test_campaigns), in the
  tests marked ``instances(2)``.

The figures (RPC split, deliveries per instance, runs per timer) are written to
``<var>/reports/two-instances.json`` for the closing note of a scale-out change.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path

import eventlet
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from recaudo_common.config import SERVICES, settings
from recaudo_common.db import Database
from recaudo_common.localtime import today_in

from .helpers import (counting, fire_together, handled_per_instance, record, scalar, sql,
                      wait_for)
from .probes import ConsumerService, ProducerService

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.instances(2)


# --- RPCs of the seven services ----------------------------------------------------------

def quiet(name: str):
    """Service ``name`` without its outbox relay: the database is shared with the other
    suites, whose unpublished events must not reach this test's vhost."""
    cls = getattr(import_module(f"{name}.service"), f"{name.capitalize()}Service")
    return type(cls.__name__, (cls,), {"db": Database(cls.db.base, relay=False)})


def test_rpcs_of_every_service_are_shared_between_its_two_instances(
        container_factory, instances, rabbit_config, s3_server):
    for name in SERVICES:
        container_factory(quiet(name), rabbit_config).start()
    counters = {name: handled_per_instance(instances[name]) for name in SERVICES}
    calls_per_service, clients = 40, 8

    def client(_):
        with ClusterRpcProxy(rabbit_config, timeout=30) as proxy:
            for name in SERVICES:
                for _ in range(calls_per_service // clients):
                    assert getattr(proxy, name).health()["service"] == name

    list(eventlet.GreenPool(clients).imap(client, range(clients)))
    split = {name: [c["health"] for c in counters[name]] for name in SERVICES}
    record("rpc_split_health_calls", split)
    for name, answered in split.items():
        assert sum(answered) == calls_per_service, name
        assert all(answered), f"{name}: one instance answered every call: {answered}"


# --- events: relay, inbox, kill -9, live subscriptions -----------------------------------

def _count(engine, statement: str, **params) -> int:
    return scalar(engine, statement, **params)


def _record_notes(rabbit_config, n: int, clients: int = 8) -> list[int]:
    def client(i):
        with ClusterRpcProxy(rabbit_config, timeout=30) as proxy:
            return [proxy.probe_producer.record(f"nota {i}-{k}") for k in range(n // clients)]

    return [note for notes in eventlet.GreenPool(clients).imap(client, range(clients))
            for note in notes]


def test_two_relays_publish_each_row_once_and_a_redelivered_event_takes_effect_once(
        probe_schemas, engine, container_factory, instances, rabbit_config):
    container_factory(ConsumerService, rabbit_config).start()
    container_factory(ProducerService, rabbit_config).start()
    recorders = handled_per_instance(instances["probe_producer"])
    notes = _record_notes(rabbit_config, 200)
    assert wait_for(lambda: _count(engine, "SELECT count(*) FROM probe_consumer.effects") == 200
                    and _count(engine, "SELECT count(*) FROM probe_producer.outbox "
                                       "WHERE published_at IS NULL") == 0, 30)
    time.sleep(0.5)  # a duplicate would arrive now
    first = _count(engine, "SELECT count(*) FROM probe_consumer.deliveries")
    assert first == 200, "each outbox row relayed once by the two relays"

    # a crash between publish and mark: every row is published again, by either relay
    sql(engine, "UPDATE probe_producer.outbox SET published_at = NULL")
    for provider in _databases(instances["probe_producer"]):
        provider.relay.wake()
    assert wait_for(lambda: _count(engine, "SELECT count(*) FROM probe_consumer.deliveries")
                    == 400, 30)
    time.sleep(0.5)
    assert _count(engine, "SELECT count(*) FROM probe_consumer.effects") == 200
    assert _count(engine, "SELECT count(DISTINCT note_id) FROM probe_consumer.effects") == 200
    per_instance = dict(sql(engine, "SELECT instance, count(*) FROM probe_consumer.deliveries "
                                    "GROUP BY instance"))
    crossed = _count(engine, "SELECT count(*) FROM (SELECT note_id FROM probe_consumer.deliveries "
                             "GROUP BY note_id HAVING count(DISTINCT instance) = 2) x")
    record("events_relay_and_redelivery", {
        "records_per_producer_instance": [c["record"] for c in recorders],
        "rows_relayed": 200, "deliveries_first_pass": first, "deliveries_after_republish": 400,
        "effects": 200, "deliveries_per_consumer_instance": sorted(per_instance.values()),
        "events_whose_copies_went_to_both_instances": crossed})
    assert sorted(set(notes)) == sorted(notes) and len(notes) == 200
    assert all(c["record"] for c in recorders), "both producers took RPCs"
    assert len(per_instance) == 2 and crossed > 0


def _databases(containers):
    return [ext for c in containers for ext in c.dependencies if isinstance(ext, Database)]


def _consumer_process(rabbit_config, pause: float) -> subprocess.Popen:
    """An instance of the consumer as a process of its own (to be killed -9)."""
    code = ("import eventlet; eventlet.monkey_patch()\n"
            "from recaudo_common.db import make_cooperative; make_cooperative()\n"
            "from nameko.cli.run import run\n"
            "from tests.integration.probes import ConsumerService\n"
            f"run([ConsumerService], {{'AMQP_URI': {rabbit_config['AMQP_URI']!r}, "
            "'serializer': 'json'})\n")
    env = dict(os.environ, PROBE_CONSUMER_PAUSE=str(pause), PSYCOPG_WAIT_FUNC="wait_select")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.instances(1)
def test_kill_9_of_an_instance_under_load_loses_no_accepted_event(
        probe_schemas, engine, container_factory, rabbit_config, rabbit_manager, monkeypatch):
    monkeypatch.setattr(ConsumerService, "pause", 0.02)
    container_factory(ProducerService, rabbit_config).start()
    container_factory(ConsumerService, rabbit_config).start()      # the instance that stays
    process = _consumer_process(rabbit_config, pause=0.02)         # the instance killed
    survivor = f"{os.getpid()}:"
    try:
        assert wait_for(lambda: _consumers(rabbit_manager, rabbit_config) == 2, 30), "both instances consume"
        eventlet.spawn(_record_notes, rabbit_config, 400)
        killed_had = lambda: _count(  # noqa: E731
            engine, "SELECT count(*) FROM probe_consumer.deliveries WHERE instance NOT LIKE :s",
            s=survivor + "%")
        assert wait_for(lambda: killed_had() >= 20, 60), "the process takes its share"
        os.kill(process.pid, signal.SIGKILL)                       # with messages unacked
        process.wait(10)
        handled_by_killed = killed_had()
        assert wait_for(lambda: _count(engine, "SELECT count(*) FROM probe_consumer.effects")
                        == 400, 90), "every accepted event took effect"
        time.sleep(0.5)
        assert _count(engine, "SELECT count(DISTINCT note_id) FROM probe_consumer.effects") == 400
        assert _count(engine, "SELECT count(*) FROM probe_consumer.effects") == 400
        record("kill_9_under_load", {
            "events": 400, "handled_by_the_killed_instance": handled_by_killed,
            "handled_by_the_survivor": 400 - handled_by_killed, "effects": 400, "lost": 0})
        assert handled_by_killed < 400
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def _consumers(rabbit_manager, rabbit_config) -> int:
    queues = rabbit_manager.get_queues(rabbit_config["vhost"])
    return sum(q.get("consumers", 0) for q in queues if q["name"].startswith("evt-probe_producer"))


def test_live_subscriptions_see_the_events_whichever_instance_emitted_them(
        probe_schemas, engine, container_factory, instances, rabbit_config, monkeypatch):
    """A dashboard's stream, in whichever gateway process serves it, binds its own queue
    to the service's events exchange: two of them (two gateway processes) both get every
    event, emitted by either producer instance."""
    monkeypatch.setenv("RECAUDO_AMQP_URI", rabbit_config["AMQP_URI"])
    settings.cache_clear()
    from gateway.events import Subscription

    container_factory(ProducerService, rabbit_config).start()
    recorders = handled_per_instance(instances["probe_producer"])
    streams = [Subscription("probe_producer", ("note_recorded",), lambda p: True)
               for _ in range(2)]
    try:
        notes = set(_record_notes(rabbit_config, 40))
        seen = []
        for stream in streams:
            got = set()
            for item in stream.events(seconds=30):
                if item is not None:
                    got.add(item[1]["note_id"])
                if got >= notes:
                    break
            seen.append(len(got & notes))
        record("live_subscriptions", {
            "events": len(notes), "emitted_per_instance": [c["record"] for c in recorders],
            "received_per_gateway_subscription": seen})
        assert seen == [len(notes), len(notes)]
        assert all(c["record"] for c in recorders)
    finally:
        for stream in streams:
            stream.close()
        monkeypatch.undo()
        settings.cache_clear()


# --- timers fired on both instances at once ---------------------------------------------

#: accounts of an institution of this module's own (removed after)
TWIN_INSTITUTION, TWIN_ACCOUNTS = 923001, range(923001, 923006)


@pytest.fixture
def accounts(engine):
    """A few accounts, so a day's snapshot has rows (a day with none is taken again)."""
    def remove():
        for table, column in (("accounts", "institution_id"), ("debtors", "institution_id"),
                              ("institutions", "id")):
            sql(engine, f"DELETE FROM portfolio.{table} WHERE {column} = :i", i=TWIN_INSTITUTION)
    remove()
    sql(engine, "INSERT INTO portfolio.institutions (id, code, name) VALUES (:i, 'TWIN', 'TWIN')",
        i=TWIN_INSTITUTION)
    for account in TWIN_ACCOUNTS:
        sql(engine, "INSERT INTO portfolio.debtors (id, institution_id, customer_number, name) "
                    "VALUES (:a, :i, 'TW' || :a, 'DEUDOR ' || :a)", a=account, i=TWIN_INSTITUTION)
        sql(engine, "INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number,"
                    " product, original_amount, balance, stage) VALUES (:a, :i, :a, 'TW' || :a,"
                    " 'Tarjeta', 9000, 5000, 'current')", a=account, i=TWIN_INSTITUTION)
    yield
    sql(engine, "DELETE FROM portfolio.aging_snapshots WHERE institution_id = :i",
        i=TWIN_INSTITUTION)
    for table in ("aging_daily", "aging_rolls"):
        sql(engine, f"DELETE FROM portfolio.{table} WHERE institution_id = :i", i=TWIN_INSTITUTION)
    remove()


@pytest.mark.startup_aging
def test_the_aging_snapshot_and_its_rollups_are_taken_once(
        accounts, engine, container_factory, instances, rabbit_config, monkeypatch):
    """Both instances look at start-up (the timer is eager) and again together later: the
    institution's day is snapshotted once (``aging.missing_snapshots`` holds the lock)."""
    from portfolio import aging

    taken, snapshot = [], aging.snapshot

    def counted(session, day, institution_id=None):
        rows = snapshot(session, day, institution_id)
        taken.append((institution_id, rows))
        return rows

    monkeypatch.setattr(aging, "snapshot", counted)
    container_factory(quiet("portfolio"), rabbit_config).start()
    mine = lambda: [rows for i, rows in taken if i == TWIN_INSTITUTION]  # noqa: E731
    assert wait_for(lambda: len(mine()) >= 1, 30)
    fire_together(instances["portfolio"], "daily_aging")
    record("timer_daily_aging", {"instances": 2, "looks": 4, "snapshots_taken": len(mine()),
                                 "accounts": len(TWIN_ACCOUNTS), "rows": mine()})
    assert mine() == [len(TWIN_ACCOUNTS)]
    assert _count(engine, "SELECT count(*) FROM portfolio.aging_snapshots "
                          "WHERE institution_id = :i", i=TWIN_INSTITUTION) == len(TWIN_ACCOUNTS)


@pytest.fixture
def placed(engine):
    """An account placed in a queue of an active strategy, so the day's snapshot has a row
    (a day with none is taken again: nothing to take)."""
    def remove():
        sql(engine, "DELETE FROM queues.assigned_daily WHERE institution_id = :i",
            i=TWIN_INSTITUTION)
        sql(engine, "DELETE FROM queues.strategies WHERE institution_id = :i", i=TWIN_INSTITUTION)
    remove()
    strategy = sql(engine, "INSERT INTO queues.strategies (institution_id, name, state, "
                           "created_by) VALUES (:i, 'TWIN', 'active', 1) RETURNING id",
                   i=TWIN_INSTITUTION)[0][0]
    queue = sql(engine, "INSERT INTO queues.queues (strategy_id, position, name, conditions, "
                        "sort, team_id) VALUES (:s, 1, 'TWIN', '{}', '[]', 1) RETURNING id",
                s=strategy)[0][0]
    sql(engine, "INSERT INTO queues.assignments (account_id, institution_id, queue_id, rank) "
                "VALUES (:a, :i, :q, 1)", a=TWIN_ACCOUNTS[0], i=TWIN_INSTITUTION, q=queue)
    yield
    remove()


def test_the_assigned_snapshot_of_the_day_is_taken_once(
        placed, engine, container_factory, instances, rabbit_config, monkeypatch):
    from queues import reports

    taken = counting(monkeypatch, reports, "snapshot_missing_days")
    container_factory(quiet("queues"), rabbit_config).start()
    fire_together(instances["queues"], "daily_assigned_snapshot")
    # each institution's own day (timefmt's rule), taken once: one row for its one queue
    rows = sql(engine, "SELECT day, count(*) FROM queues.assigned_daily "
                       "WHERE institution_id = :i GROUP BY day", i=TWIN_INSTITUTION)
    record("timer_daily_assigned_snapshot", {"instances_fired": 2, "snapshots_taken": len(taken),
                                             "rows": [r[1] for r in rows]})
    assert 1 <= len(taken) <= 2 and [r[1] for r in rows] == [1]
    zone = sql(engine, "SELECT time_zone FROM queues.institution_rules WHERE institution_id = :i",
               i=TWIN_INSTITUTION)
    assert rows[0][0] == today_in(zone[0][0] if zone else None)
