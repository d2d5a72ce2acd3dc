"""Alembic, once for all services: each service keeps its own history in
``<service>/migrations`` and its own version table in its own schema.
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from alembic import command, context, op
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from .config import SERVICES, settings


def models_of(service: str):
    return import_module(f"{service}.models").Base


def alembic_config(service: str, url: str | None = None) -> Config:
    package = Path(import_module(service).__file__).parent
    cfg = Config()
    cfg.set_main_option("script_location", str(package / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or settings().database_url)
    cfg.attributes["service"] = service
    return cfg


def _include_object(schema: str):
    def include(obj, name, type_, reflected, compare_to):
        return type_ != "table" or obj.schema == schema
    return include


def run_env(base) -> None:
    """Body of every service's ``migrations/env.py`` (online mode only)."""
    schema = base.metadata.schema
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as conn:
        # replicas starting together (each pod migrates its own service first) take turns:
        # the lock lasts as long as this connection, so it needs a direct one, not PgBouncer's
        conn.execute(text("SELECT pg_advisory_lock(hashtext(:key))"),
                     {"key": f"recaudo-migrate-{schema}"})
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        conn.commit()
        context.configure(
            connection=conn,
            target_metadata=base.metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_object=_include_object(schema),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def create_plumbing_tables(schema: str) -> None:
    """The outbox and processed-events tables every service schema starts with, exactly
    as ``models.service_base`` declares them (each service's baseline revision calls it)."""
    from .models import service_base

    base = service_base(schema)
    for table in (base.outbox, base.processed_events):
        table.create(op.get_bind())


def drop_plumbing_tables(schema: str) -> None:
    op.drop_table("processed_events", schema=schema)
    op.drop_table("outbox", schema=schema)


def upgrade(services=SERVICES, url: str | None = None) -> None:
    for service in services:
        command.upgrade(alembic_config(service, url), "head")


def revision(service: str, message: str) -> None:
    command.revision(alembic_config(service), message=message, autogenerate=True)


def drift(service: str, url: str | None = None) -> list:
    """Differences between ``service``'s models and its migrated schema (should be [])."""
    base = models_of(service)
    schema = base.metadata.schema
    engine = create_engine(url or settings().database_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_schemas": True, "include_object": _include_object(schema),
            "compare_type": True, "version_table_schema": schema})
        diffs = compare_metadata(ctx, base.metadata)
    engine.dispose()
    return diffs
