"""Declarative bases, one per service schema, each with the outbox and inbox tables.

Every service's ``models.py`` starts with ``Base = service_base("<schema>")`` so its
tables, its outbox (events waiting to be relayed) and its processed-events inbox
(dedupe of handled events) live in its own PostgreSQL schema and in its own
Alembic history.
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, DateTime, Index, MetaData, String, Table, Text,
                        func, text)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_base(schema: str) -> type[DeclarativeBase]:
    metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)

    class Base(DeclarativeBase):
        pass

    Base.metadata = metadata
    Base.outbox = Table(
        "outbox", metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL")),
    )
    Base.processed_events = Table(
        "processed_events", metadata,
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("handler", Text, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return Base
