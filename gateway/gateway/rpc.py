"""A per-process pool of started nameko cluster proxies.

gunicorn runs the gateway in ``gthread`` workers: a proxy per request costs a new
reply queue each time (4x slower), and one proxy shared by threads breaks under
concurrency (docs/architecture.md §7). Each request borrows one started proxy, sets the
caller's context data (identity, request id, language) on it, and gives it back;
a proxy that failed at the transport level is dropped, not reused, and one whose broker
connection died while it sat idle (RabbitMQ restarted: its reply queue is gone) is
dropped when next borrowed, so no request waits the whole RPC timeout for a reply that
can never arrive.
"""
from __future__ import annotations

import queue
import socket
import threading
from contextlib import contextmanager

from flask import current_app, g
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from recaudo_common.errors import DomainError
from recaudo_common.resilience import unavailable
from recaudo_common.rpc_publishing import confirm_for_a_while

from . import i18n


class RpcPool:
    def __init__(self, config: dict, size: int = 8, timeout: float | None = 30.0):
        self.config = config
        self.size = size
        self.timeout = timeout
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    def _acquire(self) -> ClusterRpcProxy:
        while True:
            try:
                standalone = self._idle.get_nowait()
            except queue.Empty:
                break
            if _connected(standalone):
                return standalone
            confirm_for_a_while()   # the broker went away: it may come back half-bound
            self._discard(standalone)
        with self._lock:
            grow = self._created < self.size
            if grow:
                self._created += 1
        if not grow:
            return self._idle.get(timeout=self.timeout)
        try:
            standalone = ClusterRpcProxy(self.config, timeout=self.timeout)
            standalone.start()
        except Exception:
            with self._lock:
                self._created -= 1
            raise
        return standalone

    def _discard(self, standalone: ClusterRpcProxy) -> None:
        with self._lock:
            self._created -= 1
        try:
            standalone.stop()
        except Exception:  # the connection is already broken; nothing to close
            pass

    @contextmanager
    def proxy(self, context_data: dict | None = None):
        """Borrow a cluster proxy (``proxy.<service>.<method>(...)``) for one request."""
        standalone = self._acquire()
        standalone._worker_ctx.data = dict(context_data or {})
        try:
            yield standalone._proxy
        except (DomainError, RemoteError):
            self._idle.put(standalone)   # the service answered: the proxy is healthy
            raise
        except BaseException as exc:
            if unavailable(exc) == "broker":
                confirm_for_a_while()
            self._discard(standalone)
            raise
        else:
            self._idle.put(standalone)

    def close(self) -> None:
        while True:
            try:
                self._discard(self._idle.get_nowait())
            except queue.Empty:
                return


def _connected(standalone: ClusterRpcProxy) -> bool:
    """Whether the proxy's reply connection still works: reading what is waiting on it
    (nothing, or the broker's farewell) tells without a round trip."""
    try:
        standalone._reply_listener.queue_consumer.connection.drain_events(timeout=0.0001)
    except socket.timeout:
        return True
    except Exception:  # closed by the broker, reset, or never reconnected
        return False
    return True


def rpc(context_data: dict | None = None):
    """Borrow a service proxy carrying this request's id, language and caller identity."""
    data = {"request_id": g.get("request_id"), "language": i18n.current_language()}
    if g.get("identity_token"):
        data["identity"] = g.identity_token
    data.update(context_data or {})
    return current_app.extensions["recaudo.rpc"].proxy(data)
