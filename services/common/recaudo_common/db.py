"""The database dependency of every service: cooperative sessions, outbox, inbox.

``Database(Base)`` gives an entrypoint ``self.db`` with:

* ``session()`` – one transaction (commit on success, rollback on error);
* ``emit(session, event_type, payload)`` – write an event to the outbox in that
  transaction; it is relayed to RabbitMQ after commit (see ``outbox.py``);
* ``first_time(session, event_id, handler)`` – the inbox check that makes event
  handlers idempotent;
* ``only_one(session, job)`` – a timer's job done by one instance at a time;
* ``health()`` – a round trip to PostgreSQL.

``Database.outside(Base, engine, name)`` gives the same ``self.db`` to a service's code run
in another process (the command line's import).

psycopg 3 waits for the server in a C function that blocks the whole process
under eventlet; ``make_cooperative`` swaps in the select-based wait so that
concurrent workers overlap their queries (docs/architecture.md §7).
"""
from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import psycopg.waiting
from psycopg.errors import NumericValueOutOfRange
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from .config import settings
from .contracts import schema_for
from .errors import InvalidInput
from .outbox import OutboxRelay


def make_cooperative() -> None:
    """Under eventlet, make psycopg wait with (green) select instead of blocking C."""
    try:
        from eventlet import patcher
    except ImportError:  # pragma: no cover - eventlet is always installed here
        return
    if patcher.is_monkey_patched("select"):
        psycopg.waiting.wait = psycopg.waiting.wait_select


def make_engine(url: str | None = None, pool_size: int | None = None):
    make_cooperative()
    cfg = settings()
    return create_engine(
        url or cfg.database_url,
        pool_size=pool_size or cfg.db_pool_size,
        max_overflow=cfg.db_pool_size // 2,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"prepare_threshold": cfg.prepare_threshold},
    )


def write_event(session, outbox, source: str, event_type: str, payload: dict,
                headers: dict | None = None) -> uuid.UUID:
    """One event of ``source`` into its ``outbox`` table, in ``session``'s transaction, dumped
    through the event's contract (``recaudo_common.contracts``)."""
    event_id = uuid.uuid4()
    write_events(session, outbox, source, [(event_id, event_type, payload, headers)])
    return event_id


def write_events(session, outbox, source: str,
                 events: list[tuple[uuid.UUID, str, dict, dict | None]]) -> None:
    """``write_event`` for many ``(event_id, event_type, payload, headers)`` in one insert,
    in the given order."""
    if not events:
        return
    occurred_at = datetime.now(timezone.utc)
    session.execute(outbox.insert(), [
        {"event_id": event_id, "event_type": event_type, "headers": headers or {},
         "payload": schema_for(source, event_type).dump(
             dict(payload, event_id=event_id, occurred_at=occurred_at))}
        for event_id, event_type, payload, headers in events])


def write_events_from(session, outbox, event_type: str, payloads: str, params: dict,
                      headers: dict | None = None) -> int:
    """Events of ``event_type`` whose payloads one SELECT (``payloads``, a single jsonb
    column, each row one event without ``event_id`` and ``occurred_at``) builds inside
    PostgreSQL, written to ``outbox`` in one statement: a million-row announcement never
    travels to Python and back. The SELECT must build what the event's contract loads
    (its tests load such payloads through it). Returns how many events were written."""
    occurred_at = datetime.now(timezone.utc)
    table = f"{outbox.schema}.{outbox.name}"
    return session.execute(text(f"""
        INSERT INTO {table} (event_id, event_type, headers, payload)
        SELECT e.id, :_event_type, CAST(:_headers AS jsonb),
               e.payload || jsonb_build_object('event_id', e.id, 'occurred_at', CAST(:_occurred_at AS text))
        FROM (SELECT gen_random_uuid() AS id, s.payload
              FROM ({payloads}) AS s(payload)) AS e"""),
        dict(params, _event_type=event_type, _headers=json.dumps(headers or {}),
             _occurred_at=occurred_at.isoformat())).rowcount


class Outbox:
    """``db`` for a service's own functions run outside its container - the demo seeds of
    ``recaudo seed-live``, which run while the services are up - so the events those
    functions emit go to the service's outbox exactly as from an RPC, and its running relay
    (which polls) publishes them to every consumer."""

    def __init__(self, base, source: str):
        self.outbox, self.source = base.outbox, source
        self._held: list | None = None

    def emit(self, session, event_type: str, payload: dict) -> uuid.UUID:
        if self._held is None:
            return write_event(session, self.outbox, self.source, event_type, payload)
        event_id = uuid.uuid4()
        self._held.append((event_id, event_type, payload, None))
        return event_id

    @contextmanager
    def held(self, session):
        """The events emitted inside are written at the end in one insert, in order (a
        history of thousands of entries written at once); none if it fails."""
        self._held = []
        try:
            yield self
            write_events(session, self.outbox, self.source, self._held)
        finally:
            self._held = None


class Database(DependencyProvider):
    def __init__(self, base, relay: bool = True):
        self.base = base
        self.schema = base.metadata.schema
        self.relay_enabled = relay
        self._service_name: str | None = None

    @classmethod
    def outside(cls, base, engine, service_name: str) -> "ServiceDatabase":
        """``self.db`` for a service's own functions run in a process that is not one of its
        containers (the ``recaudo`` command's import): the same sessions, ``emit`` and inbox
        on ``engine``; the events wait in the outbox for the running service's relay."""
        provider = cls(base, relay=False)
        provider.engine = engine
        provider.sessions = sessionmaker(engine, expire_on_commit=False)
        provider._service_name = service_name
        return ServiceDatabase(provider)

    @property
    def service_name(self) -> str:
        """Whose events ``emit`` writes: the container's service (or the one named)."""
        return self._service_name or self.container.service_name

    def setup(self):
        self.engine = make_engine()
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.relay = OutboxRelay(
            service_name=self.container.service_name,
            engine=self.engine,
            outbox=self.base.outbox,
            amqp_uri=self.container.config["AMQP_URI"],
            config=self.container.config,
            poll_seconds=settings().outbox_poll_seconds,
        )
        event.listen(self.sessions, "after_commit", self._after_commit)

    def start(self):
        if self.relay_enabled:
            self.container.spawn_managed_thread(self.relay.run)

    def stop(self):
        self.relay.stop()
        self.engine.dispose()

    def kill(self):
        self.relay.stop()
        self.engine.dispose()  # a killed container must not keep its connections

    def _after_commit(self, session: Session):
        if session.info.pop("outbox_pending", False):
            self.relay.wake()

    def get_dependency(self, worker_ctx):
        return ServiceDatabase(self, worker_ctx)


class ServiceDatabase:
    """What an entrypoint sees as ``self.db``."""

    def __init__(self, provider: Database, worker_ctx=None):
        self._provider = provider
        self._worker_ctx = worker_ctx
        self.engine = provider.engine

    @contextmanager
    def session(self, commit_on: tuple[type[BaseException], ...] = ()):
        """One transaction: committed on success, rolled back on error, except for the
        errors in ``commit_on`` - refusals that must leave a trace (a failed login's
        counter and audit entry) are committed and then raised."""
        session = self._provider.sessions()
        try:
            yield session
        except commit_on:
            session.commit()
            raise
        except DataError as exc:
            session.rollback()
            if isinstance(exc.orig, NumericValueOutOfRange):
                # the gateway bounds every number it reads (``validation.Schema``,
                # ``gateway.boundary``); one that slipped past names no row: refused, not a crash
                raise InvalidInput("Número fuera de rango", {"_schema": [
                    "Un número excede el rango de su columna"]}) from None
            raise
        except BaseException:
            session.rollback()
            raise
        else:
            session.commit()
        finally:
            session.close()

    @contextmanager
    def one_statement(self):
        """A connection on which each statement is its own transaction: for a hot path
        that is one statement (a server-side function that does all its work in one
        call), without the BEGIN and COMMIT round trips of ``session``. A failed
        statement rolls itself back; nothing is written to the outbox here."""
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def _headers(self) -> dict:
        if self._worker_ctx is None:
            return {}
        return {k: v for k, v in self._worker_ctx.context_data.items()
                if k in ("request_id", "call_id_stack")}

    def emit(self, session: Session, event_type: str, payload: dict) -> uuid.UUID:
        """Queue ``event_type`` in the outbox, atomically with ``session``'s changes."""
        event_id = write_event(session, self._provider.base.outbox,
                               self._provider.service_name, event_type, payload,
                               self._headers())
        session.info["outbox_pending"] = True
        return event_id

    def emit_many(self, session: Session, events: list[tuple[str, dict]]) -> None:
        """``emit`` for several ``(event_type, payload)`` in one insert, in order."""
        if events:
            write_events(session, self._provider.base.outbox, self._provider.service_name,
                         [(uuid.uuid4(), event_type, payload, self._headers())
                          for event_type, payload in events])
            session.info["outbox_pending"] = True

    def emit_from(self, session: Session, event_type: str, payloads: str,
                  params: dict | None = None) -> int:
        """``emit`` for events whose payloads a SELECT builds in the database
        (``write_events_from``); returns how many."""
        written = write_events_from(session, self._provider.base.outbox, event_type,
                                    payloads, params or {}, self._headers())
        if written:
            session.info["outbox_pending"] = True
        return written

    def first_time(self, session: Session, event_id, handler: str) -> bool:
        """Record that ``handler`` processed ``event_id``; False if it already had."""
        table = self._provider.base.processed_events
        inserted = session.execute(
            insert(table).values(event_id=uuid.UUID(str(event_id)), handler=handler)
            .on_conflict_do_nothing().returning(table.c.event_id)
        ).first()
        return inserted is not None

    def only_one(self, session: Session, job: str) -> bool:
        """Whether this transaction does ``job`` (False: another instance's transaction is
        doing it now). The timers of every instance of a service fire; a job that must
        happen once takes the job's advisory lock, held to the transaction's end, then
        checks whether it is still to do (a run that finished before is seen committed)."""
        return session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext(:job))"),
                               {"job": f"{self._provider.schema}.{job}"}).scalar()

    def health(self) -> dict:
        started = time.perf_counter()
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"database": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
