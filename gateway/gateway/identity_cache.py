"""The identities this gateway process resolved, kept so a known session or token costs
no round trip to the auth service.

The promise kept: logging out, revoking a token or an API key, disabling a user,
changing a password, a profile's permissions, a team or a user's institutions takes
effect everywhere within a second. The auth service emits ``access_changed`` in the
transaction of each such change; every gateway process binds a queue of its own to
``auth.events`` and forgets what the event names as soon as it arrives. Besides:

- an entry lives at most ``ttl`` seconds (a safety net, and how a session in use is
  still touched now and then by the auth service) and never past ``cache_until``, the
  moment the auth service said the credential ends by itself;
- only credentials the auth service accepted are kept, at most ``max_entries`` of them
  (least recently used go first), so a flood of random tokens fills nothing;
- nothing is trusted unless the listener is consuming: a process that loses its broker
  connection forgets everything and asks the auth service again until it is back;
- an answer that was being fetched while an event arrived is not stored (the
  generation counter), so a revocation can never be overtaken by a stale answer.

Keys are SHA-256 digests of the credentials, as the auth service stores them, so an
event can name a revoked session without carrying its secret.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import NamedTuple

from kombu import Connection, Exchange, Queue

log = logging.getLogger(__name__)

SOURCE, EVENT = "auth", "access_changed"
#: seconds between reconnection attempts while the broker is away
RECONNECT_SECONDS = 1.0


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


class _Entry(NamedTuple):
    resolved: dict
    user_id: int
    deadline: float     # time.monotonic() after which the entry is not served


class IdentityCache:
    def __init__(self, amqp_uri: str, ttl: float = 30.0, max_entries: int = 10_000,
                 clock=time.monotonic, wall_clock=time.time):
        self.amqp_uri, self.ttl, self.max_entries = amqp_uri, ttl, max_entries
        self._clock, self._wall = clock, wall_clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self._trusted = False
        self._pid: int | None = None
        self._stopped = threading.Event()

    # --- the request path -------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    def lookup(self, kind: str, credential: str) -> dict | None:
        """What the auth service answered for this credential, if still trusted."""
        if not self.enabled:
            return None
        self._ensure_listener()
        key = (kind, digest(credential))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not self._trusted:
                return None
            if entry.deadline <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.resolved

    def generation(self) -> int:
        """Read before asking the auth service; hand back to ``store``."""
        with self._lock:
            return self._generation

    def store(self, kind: str, credential: str, resolved: dict, generation: int) -> None:
        """Keep an answer of the auth service, unless anything was forgotten since
        ``generation`` was read (the answer may predate a revocation)."""
        if not self.enabled:
            return
        deadline = self._clock() + self.ttl
        until = resolved.get("cache_until")
        if until:
            left = datetime.fromisoformat(until).timestamp() - self._wall()
            deadline = min(deadline, self._clock() + left)
        with self._lock:
            if not self._trusted or generation != self._generation:
                return
            key = (kind, digest(credential))
            self._entries[key] = _Entry(resolved, resolved["user"]["id"], deadline)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def trusted(self) -> bool:
        return self._trusted

    # --- forgetting ---------------------------------------------------------------------

    def forget(self, payload: dict) -> None:
        """Apply one ``access_changed`` event."""
        credentials = set(payload.get("credentials") or ())
        user_ids = set(payload.get("user_ids") or ())
        with self._lock:
            self._generation += 1
            if payload.get("everyone"):
                self._entries.clear()
                return
            for key in [k for k, e in self._entries.items()
                        if k[1] in credentials or e.user_id in user_ids]:
                del self._entries[key]

    def _distrust(self) -> None:
        with self._lock:
            self._trusted = False
            self._generation += 1
            self._entries.clear()

    # --- the listener -------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        """Start this process's listener (gunicorn forks workers after the app is made:
        a thread and entries inherited from another process are not ours)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self._trusted = False
            self._entries.clear()
            self._stopped.clear()
        threading.Thread(target=self._listen, name="identity-cache", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _listen(self) -> None:
        exchange = Exchange(f"{SOURCE}.events", type="topic", durable=True)
        while not self._stopped.is_set():
            try:
                with Connection(self.amqp_uri, heartbeat=10, connect_timeout=3) as conn:
                    queue = Queue(exchange=exchange, routing_key=EVENT, exclusive=True,
                                  auto_delete=True, durable=False)
                    with conn.Consumer(queue, accept=["json"], no_ack=True,
                                       callbacks=[self._on_message]):
                        with self._lock:
                            self._trusted = True
                        log.info("identity cache: listening to %s.%s", SOURCE, EVENT)
                        while not self._stopped.is_set():
                            try:
                                conn.drain_events(timeout=1)
                            except socket.timeout:
                                conn.heartbeat_check()
            except Exception as exc:  # broker away or connection lost: distrust, retry
                if not self._stopped.is_set():
                    log.warning("identity cache: broker connection lost (%s); "
                                "resolving every request until it is back", exc)
            finally:
                self._distrust()
            self._stopped.wait(RECONNECT_SECONDS)

    def _on_message(self, body, message) -> None:
        payload = body if isinstance(body, dict) else json.loads(body)
        self.forget(payload)
