"""Transactional outbox: an event committed with its change is delivered exactly once,
even when the service dies before relaying it, and a re-published copy is deduped."""
import dataclasses
import os
import time
import uuid

from sqlalchemy import select, update

from recaudo_common import db as db_module
from recaudo_common.config import settings
from recaudo_common.db import Database
from recaudo_common.outbox import OutboxRelay

from .helpers import wait_for
from .probes import ConsumerService, ProducerBase, ProducerService, all_published, effects


class CrashingProducerService(ProducerService):
    """The same service, whose relay never gets to run before the process dies."""

    db = Database(ProducerBase, relay=False)


def test_event_survives_a_crash_before_relay_and_arrives_once(
        probe_schemas, engine, container_factory, rabbit_config, rpc_proxy):
    consumer = container_factory(ConsumerService, rabbit_config)
    consumer.start()

    crashing = container_factory(CrashingProducerService, rabbit_config)
    crashing.start()
    note_id = rpc_proxy().probe_producer.record("promesa registrada")
    crashing.kill()  # dies after commit, before anything was published

    outbox = ProducerBase.outbox
    with engine.connect() as conn:
        pending = conn.execute(select(outbox.c.published_at)).all()
    assert pending == [(None,)], "the event must be committed with the change, unpublished"
    time.sleep(0.5)
    assert effects(engine, note_id) == 0

    restarted = container_factory(ProducerService, rabbit_config)
    restarted.start()  # the relay picks up what the dead process left behind
    assert wait_for(lambda: effects(engine, note_id) == 1)
    assert wait_for(lambda: all_published(engine)), "marked after it was published"

    # a crash between publish and mark publishes the same event again: deduped
    with engine.begin() as conn:
        conn.execute(update(outbox).values(published_at=None))
    restarted.kill()
    container_factory(ProducerService, rabbit_config).start()
    assert wait_for(lambda: all_published(engine))
    time.sleep(0.5)
    assert effects(engine, note_id) == 1


def test_live_events_are_relayed_right_after_commit(
        probe_schemas, engine, container_factory, rabbit_config, rpc_proxy, monkeypatch):
    slow_poll = dataclasses.replace(settings(), outbox_poll_seconds=60)
    monkeypatch.setattr(db_module, "settings", lambda: slow_poll)
    container_factory(ConsumerService, rabbit_config).start()
    container_factory(ProducerService, rabbit_config).start()
    proxy = rpc_proxy()
    time.sleep(0.2)  # let the relay's first pass finish and start its 60 s wait
    started = time.monotonic()
    ids = [proxy.probe_producer.record(f"nota {i}") for i in range(20)]
    # woken by each commit, not by the (60 s) poll
    assert wait_for(lambda: all(effects(engine, i) == 1 for i in ids), seconds=10)
    assert time.monotonic() - started < 10


def test_large_events_are_relayed_a_few_megabytes_at_a_time(
        probe_schemas, engine, rabbit_config):
    """A bulk import writes events of thousands of accounts faster than they go out; the
    relay must not load hundreds of them at once, and must still publish every one."""
    outbox = ProducerBase.outbox
    blob = os.urandom(150_000).hex()  # ~300 kB that pglz cannot shrink
    with engine.begin() as conn:
        for i in range(6):
            conn.execute(outbox.insert().values(
                event_id=uuid.uuid4(), event_type="note_recorded",
                payload={"note_id": i, "padding": blob}, headers={}))
    relay = OutboxRelay("probe_producer", engine, outbox, rabbit_config["AMQP_URI"],
                        rabbit_config, batch_bytes=700_000)
    sizes = []
    while batch := relay.relay_batch():
        sizes.append(batch)
    assert sizes == [2, 2, 2]
    assert all_published(engine)
