"""Relay of the transactional outbox to RabbitMQ.

A service writes its events into its ``outbox`` table inside the transaction that
makes the change (``ServiceDatabase.emit``). This relay publishes committed rows to
the service's nameko events exchange with publisher confirms, and only then marks
them published. It is woken right after each commit that emitted something, and
also polls, so rows left behind by a crash (committed, never published) go out when
the service comes back. Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several
instances of a service never publish the same row concurrently; a crash between
publish and mark can publish a row twice, which the consumers' inbox dedupes.
"""
from __future__ import annotations

import logging
import threading
import time

from nameko.amqp.publish import Publisher
from nameko.standalone.events import get_event_exchange
from sqlalchemy import delete, func, select, update

from .resilience import unavailable

log = logging.getLogger(__name__)

#: stored payload bytes published per transaction: a bulk import writes events of 20,000
#: accounts (a few MB each, far more as Python objects) faster than they are published,
#: and 500 of them at once took the importing service to 3.6 GB
BATCH_BYTES = 2 << 20
#: how long published rows are kept for inspection before being cleaned away
RETENTION_SECONDS = 7 * 24 * 3600
CLEANUP_EVERY_SECONDS = 3600


class OutboxRelay:
    def __init__(self, service_name, engine, outbox, amqp_uri, config,
                 poll_seconds=2.0, batch_size=500, batch_bytes=BATCH_BYTES):
        self.service_name = service_name
        self.engine = engine
        self.outbox = outbox
        self.exchange = get_event_exchange(service_name, config)
        self.publisher = Publisher(amqp_uri, use_confirms=True, serializer="json",
                                   declare=[self.exchange])
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self._wakeup = threading.Event()
        self._stopped = threading.Event()
        self._last_cleanup = 0.0

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wakeup.set()

    def run(self) -> None:
        """Relay until stopped; survives broker and database outages by retrying."""
        while not self._stopped.is_set():
            self._wakeup.clear()
            try:
                while self.relay_batch():
                    pass
                self._cleanup()
            except Exception as exc:  # keep relaying after a broker or database outage
                down = unavailable(exc)
                if down:  # expected while it lasts: one line, not a traceback every round
                    log.warning("outbox relay of %s waits: %s is down (%s)",
                                self.service_name, down, exc)
                else:
                    log.exception("outbox relay of %s failed; retrying", self.service_name)
            self._wakeup.wait(self.poll_seconds)

    def relay_batch(self) -> int:
        """Publish the oldest pending events, up to ``batch_size`` of them and about
        ``batch_bytes`` of payload (always at least one); return how many went out."""
        table = self.outbox
        with self.engine.begin() as conn:
            claimed = conn.execute(
                select(table.c.id, func.pg_column_size(table.c.payload))
                .where(table.c.published_at.is_(None))
                .order_by(table.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            ids, size = [], 0
            for row_id, row_bytes in claimed:
                if ids and size + row_bytes > self.batch_bytes:
                    break
                ids.append(row_id)
                size += row_bytes
            if not ids:
                return 0
            rows = conn.execute(
                select(table.c.event_id, table.c.event_type, table.c.payload, table.c.headers)
                .where(table.c.id.in_(ids)).order_by(table.c.id)).all()
            for row in rows:
                self.publisher.publish(
                    row.payload,
                    exchange=self.exchange,
                    routing_key=row.event_type,
                    message_id=str(row.event_id),
                    headers={f"nameko.{k}": v for k, v in (row.headers or {}).items()},
                )
            conn.execute(update(table).where(table.c.id.in_(ids)).values(published_at=func.now()))
        return len(ids)

    def _cleanup(self) -> None:
        if time.monotonic() - self._last_cleanup < CLEANUP_EVERY_SECONDS:
            return
        self._last_cleanup = time.monotonic()
        with self.engine.begin() as conn:
            conn.execute(delete(self.outbox).where(
                self.outbox.c.published_at < func.now() - func.make_interval(
                    0, 0, 0, 0, 0, 0, RETENTION_SECONDS)))
