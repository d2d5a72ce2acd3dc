"""The outbox probes: a producer that records a note and emits ``note_recorded`` through
the outbox, and a consumer that keeps every delivery and takes each event's effect once
(the inbox). The outbox tests (``test_outbox``) and the tests with two instances
(``test_two_instances``) run them in containers, the kill -9 test also as a process of
its own (``python -c`` importing ``ConsumerService`` from here)."""
from __future__ import annotations

import os

import eventlet
from marshmallow import fields
from nameko.events import event_handler
from nameko.extensions import DependencyProvider
from sqlalchemy import Column, Integer, String, func, select, text

from recaudo_common.contracts import EventSchema, event
from recaudo_common.db import Database
from recaudo_common.models import service_base
from recaudo_common.service import ServiceBase, rpc

ProducerBase = service_base("probe_producer")
ConsumerBase = service_base("probe_consumer")


class Note(ProducerBase):
    __tablename__ = "notes"
    id = Column(Integer, primary_key=True)
    text = Column(String, nullable=False)


class Effect(ConsumerBase):
    """What a note_recorded event does, once per event (the inbox)."""
    __tablename__ = "effects"
    id = Column(Integer, primary_key=True)
    note_id = Column(Integer, nullable=False)


class Delivery(ConsumerBase):
    """Every delivery an instance handled to its end, duplicates included."""
    __tablename__ = "deliveries"
    id = Column(Integer, primary_key=True)
    note_id = Column(Integer, nullable=False)
    instance = Column(String, nullable=False)


@event("probe_producer", "note_recorded")
class NoteRecorded(EventSchema):
    note_id = fields.Integer(required=True)


class InstanceName(DependencyProvider):
    """This process and container, as ``self.instance``."""

    def get_dependency(self, worker_ctx):
        return f"{os.getpid()}:{id(self.container)}"


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


class ConsumerService(ServiceBase):
    name = "probe_consumer"
    db = Database(ConsumerBase)
    instance = InstanceName()
    #: seconds each event takes (the kill -9 test keeps messages in flight with it)
    pause = float(os.environ.get("PROBE_CONSUMER_PAUSE", "0"))

    @event_handler("probe_producer", "note_recorded")
    def on_note_recorded(self, payload):
        with self.db.session() as session:
            if self.pause:
                eventlet.sleep(self.pause)
            session.add(Delivery(note_id=payload["note_id"], instance=self.instance))
            if self.db.first_time(session, payload["event_id"], "on_note_recorded"):
                session.add(Effect(note_id=payload["note_id"]))


def create_probe_schemas(engine) -> None:
    """The probes' schemas, empty (dropped first if a run left them)."""
    drop_probe_schemas(engine)
    with engine.begin() as conn:
        for base in (ProducerBase, ConsumerBase):
            conn.execute(text(f"CREATE SCHEMA {base.metadata.schema}"))
    for base in (ProducerBase, ConsumerBase):
        base.metadata.create_all(engine)


def drop_probe_schemas(engine) -> None:
    with engine.begin() as conn:
        for base in (ProducerBase, ConsumerBase):
            conn.execute(text(f"DROP SCHEMA IF EXISTS {base.metadata.schema} CASCADE"))


def effects(engine, note_id: int) -> int:
    """How many times the event of note ``note_id`` took effect."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Effect.__table__)
                            .where(Effect.note_id == note_id)).scalar()


def all_published(engine) -> bool:
    """Whether the producer's outbox has no row left to publish."""
    outbox = ProducerBase.outbox
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.published_at.is_(None))).scalar() == 0
