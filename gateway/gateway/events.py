"""Services' events, followed live by a browser (Server-Sent Events).

A page that shows something a service is doing (an import's progress) subscribes here:
the gateway binds a private, auto-deleted queue to the service's nameko events exchange
for the event types asked, and hands each matching payload to the caller as it arrives.
The queue is bound *before* the caller reads the current state, so no event falls in
between; a browser that reconnects (``EventSource`` does it by itself) starts over with
the current state, so nothing is missed either.
"""
from __future__ import annotations

import json
import socket
import time
from typing import Callable, Iterator

from kombu import Connection, Exchange, Queue, binding

from recaudo_common.config import settings

#: seconds between keep-alive comments (proxies drop idle connections)
KEEPALIVE_SECONDS = 15
#: a stream ends after this long; the browser reconnects and gets the current state
MAX_STREAM_SECONDS = 600


class Subscription:
    """Events ``event_types`` of ``source`` whose payload passes ``match``, from now on."""

    def __init__(self, source: str, event_types: tuple[str, ...],
                 match: Callable[[dict], bool]):
        exchange = Exchange(f"{source}.events", type="topic", durable=True)
        self.queue = Queue(exclusive=True, auto_delete=True, durable=False,
                           bindings=[binding(exchange, routing_key=t) for t in event_types])
        self.match, self.received = match, []
        self.connection = Connection(settings().amqp_uri)
        self.consumer = self.connection.Consumer(self.queue, accept=["json"], no_ack=True,
                                                 callbacks=[self._on_message])
        self.consumer.consume()  # declares and binds the queue now

    def _on_message(self, body, message) -> None:
        payload = body if isinstance(body, dict) else json.loads(body)
        if self.match(payload):
            self.received.append((message.delivery_info.get("routing_key"), payload))

    def events(self, seconds: float = MAX_STREAM_SECONDS) -> Iterator[tuple[str, dict] | None]:
        """(event type, payload) as they come; None every KEEPALIVE_SECONDS of silence."""
        deadline = time.monotonic() + seconds
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            try:
                self.connection.drain_events(timeout=1)
            except socket.timeout:
                pass
            while self.received:
                quiet_since = time.monotonic()
                yield self.received.pop(0)
            if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield None

    def close(self) -> None:
        try:
            self.consumer.cancel()
        finally:
            self.connection.release()


def sse(event: str, data: dict) -> str:
    """One Server-Sent Events message."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
