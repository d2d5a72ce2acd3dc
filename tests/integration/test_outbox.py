"""Transactional outbox: an event committed with its change is delivered exactly once,
even when the service dies before relaying it, and a re-published copy is deduped."""
import dataclasses
import os
import time
import uuid

import pytest
from marshmallow import fields
from nameko.events import event_handler
from sqlalchemy import Column, Integer, String, func, select, text, update

from recaudo_common import db as db_module
from recaudo_common.config import settings
from recaudo_common.contracts import EventSchema, event
from recaudo_common.db import Database
from recaudo_common.models import service_base
from recaudo_common.outbox import OutboxRelay
from recaudo_common.service import ServiceBase, rpc

ProducerBase = service_base("probe_producer")
ConsumerBase = service_base("probe_consumer")


class Note(ProducerBase):
    __tablename__ = "notes"
    id = Column(Integer, primary_key=True)
    text = Column(String, nullable=False)


class Received(ConsumerBase):
    __tablename__ = "received"
    id = Column(Integer, primary_key=True)
    note_id = Column(Integer, nullable=False)


@event("probe_producer", "note_recorded")
class NoteRecorded(EventSchema):
    note_id = fields.Integer(required=True)


class ProducerService(ServiceBase):
    name = "probe_producer"
    db = Database(ProducerBase)

    @rpc
    def record(self, note_text):
        with self.db.session() as session:
            note = Note(text=note_text)
            session.add(note)
            session.flush()
            self.db.emit(session, "note_recorded", {"note_id": note.id})
            return note.id


class CrashingProducerService(ProducerService):
    """The same service, whose relay never gets to run before the process dies."""

    db = Database(ProducerBase, relay=False)


class ConsumerService(ServiceBase):
    name = "probe_consumer"
    db = Database(ConsumerBase)

    @event_handler("probe_producer", "note_recorded")
    def on_note_recorded(self, payload):
        with self.db.session() as session:
            if self.db.first_time(session, payload["event_id"], "on_note_recorded"):
                session.add(Received(note_id=payload["note_id"]))


@pytest.fixture
def schemas(engine):
    for base in (ProducerBase, ConsumerBase):
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {base.metadata.schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {base.metadata.schema}"))
        base.metadata.create_all(engine)
    yield
    with engine.begin() as conn:
        for base in (ProducerBase, ConsumerBase):
            conn.execute(text(f"DROP SCHEMA IF EXISTS {base.metadata.schema} CASCADE"))


def received(engine, note_id):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Received.__table__)
                            .where(Received.note_id == note_id)).scalar()


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_event_survives_a_crash_before_relay_and_arrives_once(
        schemas, engine, container_factory, rabbit_config, rpc_proxy):
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
    assert received(engine, note_id) == 0

    restarted = container_factory(ProducerService, rabbit_config)
    restarted.start()  # the relay picks up what the dead process left behind
    assert wait_for(lambda: received(engine, note_id) == 1)
    assert wait_for(lambda: _all_published(engine)), "marked after it was published"

    # a crash between publish and mark publishes the same event again: deduped
    with engine.begin() as conn:
        conn.execute(update(outbox).values(published_at=None))
    restarted.kill()
    container_factory(ProducerService, rabbit_config).start()
    assert wait_for(lambda: _all_published(engine))
    time.sleep(0.5)
    assert received(engine, note_id) == 1


def _all_published(engine):
    outbox = ProducerBase.outbox
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.published_at.is_(None))).scalar() == 0


def test_live_events_are_relayed_right_after_commit(
        schemas, engine, container_factory, rabbit_config, rpc_proxy, monkeypatch):
    slow_poll = dataclasses.replace(settings(), outbox_poll_seconds=60)
    monkeypatch.setattr(db_module, "settings", lambda: slow_poll)
    container_factory(ConsumerService, rabbit_config).start()
    container_factory(ProducerService, rabbit_config).start()
    proxy = rpc_proxy()
    time.sleep(0.2)  # let the relay's first pass finish and start its 60 s wait
    started = time.monotonic()
    ids = [proxy.probe_producer.record(f"nota {i}") for i in range(20)]
    # woken by each commit, not by the (60 s) poll
    assert wait_for(lambda: all(received(engine, i) == 1 for i in ids), seconds=10)
    assert time.monotonic() - started < 10


def test_large_events_are_relayed_a_few_megabytes_at_a_time(schemas, engine, rabbit_config):
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
    assert _all_published(engine)
