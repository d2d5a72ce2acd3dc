"""Riding out outages of the broker, the database and the object store.

nameko kills a whole service container when a worker's result handling raises, and
publishing an RPC reply while RabbitMQ is down raises ``ECONNREFUSED``: one broker blip
took auth, portfolio and activities down for good (issue 20). Here:

* ``Rpc`` / ``EventHandler``: the entrypoints every service uses (``service.rpc``,
  ``service.event_handler``). A reply or an ack that cannot be published is logged and
  the request is left to the broker, which delivers it again once the consumer has
  reconnected (nameko's ``QueueConsumer`` reconnects and re-declares its queues on its
  own); the caller meanwhile times out and retries with its ``Idempotency-Key``.
* ``tune_consumers()``: consumers reconnect within a second and survive settling a
  message on a dead connection (``run.py`` calls it once).
* ``bound_rpc_waits()``: a service's call to another service waits at most
  ``RECAUDO_RPC_TIMEOUT`` for its reply (nameko waits for ever: a reply lost with a
  broker restarted or reset held its worker for good, and a container whose workers were
  all held answered nothing, its health check included).
* ``unavailable(exc)``: which dependency an exception says is down (``"database"``,
  ``"broker"``, ``"object store"``), so the service answers ``Unavailable`` naming it
  and the gateway a 503, never a 500 with a traceback.
* ``Heartbeat``: the process's event loop touches ``RECAUDO_HEARTBEAT_FILE`` every few
  seconds; liveness probes read its age (``healthcheck --live``).
"""
from __future__ import annotations

import logging
import socket
import time
from contextlib import contextmanager

from nameko import events as _nameko_events
from nameko import rpc as _nameko_rpc
from nameko.extensions import DependencyProvider

from .config import settings
from .errors import DomainError, Unavailable
from .heartbeat import HEARTBEAT_SECONDS, beat
from .rpc_publishing import confirm_for_a_while

log = logging.getLogger(__name__)


def unavailable(exc: BaseException | None) -> str | None:
    """The dependency ``exc`` says is down, or None when it is an ordinary error. A domain
    error is the service's own answer whatever it was raised from, and a context dropped
    with ``raise ... from None`` is not followed."""
    seen = set()
    while exc is not None and id(exc) not in seen and not isinstance(exc, DomainError):
        seen.add(id(exc))
        module = type(exc).__module__ or ""
        name = type(exc).__name__
        if module.startswith(("psycopg", "sqlalchemy")) and name in (
                "OperationalError", "InterfaceError", "ReadOnlySqlTransaction",
                "AdminShutdown", "CannotConnectNow", "ConnectionTimeout"):
            return "database"
        if module.startswith(("urllib3", "minio")) and name in (
                "MaxRetryError", "NewConnectionError", "ProtocolError", "ReadTimeoutError"):
            return "object store"
        if module.startswith("nameko") and name in ("UnknownService", "RpcTimeout"):
            return "service"   # the service asked is not bound (yet) or did not answer
        if module.startswith(("kombu", "amqp")) or isinstance(
                exc, (ConnectionError, socket.timeout)):  # py-amqp raises bare socket errors
            return "broker"
        # SQLAlchemy's wrapper keeps the driver's error in .orig
        orig = getattr(exc, "orig", None)
        if isinstance(orig, BaseException):
            exc = orig
        else:
            exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def as_unavailable(exc_info):
    """``exc_info`` with an outage of a dependency turned into ``Unavailable`` naming it."""
    if exc_info is None or isinstance(exc_info[1], Unavailable):
        return exc_info
    what = unavailable(exc_info[1])
    if what is None:
        return exc_info
    error = Unavailable.of(what)
    return type(error), error, exc_info[2]


class Rpc(_nameko_rpc.Rpc):
    """nameko's ``@rpc`` answering outages as ``Unavailable``, whose reply, should it not
    be publishable, leaves the request to the broker. It shares nameko's own RPC consumer,
    so a service may still mix in plain ``nameko.rpc.rpc`` entrypoints."""

    def handle_result(self, message, worker_ctx, result, exc_info):
        exc_info = as_unavailable(exc_info)
        try:
            return self.rpc_consumer.handle_result(message, result, exc_info)
        except Exception as exc:  # the broker went away while we answered
            log.warning("reply to %s not sent (%s: %s); the request is left to the broker",
                        message.delivery_info.get("routing_key"), type(exc).__name__, exc)
            _safely(self.rpc_consumer.queue_consumer.requeue_message, message)
            return result, exc_info


class EventHandler(_nameko_events.EventHandler):
    """nameko's ``@event_handler`` whose ack survives a lost connection. A handler that
    failed because a dependency is down puts the event back (the inbox makes the second
    delivery harmless) instead of dropping it; one that failed otherwise gets one more
    delivery (a race with a concurrent write passes the second time), then is logged and
    dropped as nameko does."""

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        try:
            if exc_info is not None and unavailable(exc_info[1]):
                log.warning("event %s put back: %s is down",
                            message.delivery_info.get("routing_key"),
                            unavailable(exc_info[1]))
                time.sleep(1.0)  # not a hot loop while the dependency is away
                self.queue_consumer.requeue_message(message)
                return result, exc_info
            if exc_info is not None and not message.delivery_info.get("redelivered"):
                log.warning("event %s failed (%s: %s); delivered once more",
                            message.delivery_info.get("routing_key"),
                            type(exc_info[1]).__name__, exc_info[1])
                time.sleep(1.0)
                self.queue_consumer.requeue_message(message)
                return result, exc_info
            return super().handle_result(message, worker_ctx, result, exc_info)
        except Exception as exc:
            log.warning("event %s not acknowledged (%s: %s); the broker delivers it again",
                        message.delivery_info.get("routing_key"), type(exc).__name__, exc)
            return result, exc_info


def _safely(action, *args) -> None:
    try:
        action(*args)
    except Exception:  # the connection is gone: the broker takes the message back itself
        pass


class Heartbeat(DependencyProvider):
    """Touches ``RECAUDO_HEARTBEAT_FILE`` from the event loop while the container runs."""

    def __init__(self, path: str | None = None):
        self.path = path

    def setup(self):
        self.path = self.path or settings().heartbeat_file or None
        self._running = False

    def start(self):
        if self.path:
            self._running = True
            self.container.spawn_managed_thread(self._beat, identifier="heartbeat")

    def stop(self):
        self._running = False

    kill = stop

    def _beat(self):
        import eventlet

        while self._running:
            beat(self.path)
            eventlet.sleep(HEARTBEAT_SECONDS)

    def get_dependency(self, worker_ctx):
        return None


#: a consumer whose connection dropped tries again every half second, then every second
#: (kombu's default backs off to 30 s: a 20 s outage left services deaf for 10 s more)
RECONNECT = {"interval_start": 0.5, "interval_step": 0.5, "interval_max": 1.0}


def tune_consumers() -> None:
    """Make nameko's consumers (RPC, events, replies) reconnect promptly, forever, and
    never die acknowledging a message on a connection that is gone: nameko catches only
    py-amqp's ``ConnectionError`` there, and a reset (``ECONNRESET``) killed the service
    when the broker came back as a fresh node. The broker takes such a message back and
    delivers it again by itself."""
    from nameko.messaging import QueueConsumer

    @contextmanager
    def establish_connection(self):
        def on_connection_error(exc, interval):
            confirm_for_a_while()   # the broker may come back before every queue is bound
            self.on_connection_error(exc, interval)

        with self.create_connection() as conn:
            conn.ensure_connection(on_connection_error, self.connect_max_retries, **RECONNECT)
            yield conn

    def forgiving(settle):
        def settle_or_leave_to_the_broker(self, message):
            try:
                settle(self, message)
            except Exception as exc:
                if unavailable(exc) != "broker":
                    raise
                log.warning("message not settled (%s: %s); the broker delivers it again",
                            type(exc).__name__, exc)
        return settle_or_leave_to_the_broker

    QueueConsumer.establish_connection = establish_connection
    QueueConsumer.ack_message = forgiving(QueueConsumer.ack_message)
    QueueConsumer.requeue_message = forgiving(QueueConsumer.requeue_message)


def bound_rpc_waits() -> None:
    """Make a service's RPC to another service raise ``RpcTimeout`` (an outage of
    ``"service"``: answered ``Unavailable``, an event put back) when no reply came within
    ``RECAUDO_RPC_TIMEOUT``, forgetting the call so a late reply is dropped."""
    from nameko.exceptions import RpcTimeout
    from nameko.rpc import ReplyListener, RpcReply

    if getattr(RpcReply.result, "bounded", False):
        return
    get_reply_event = ReplyListener.get_reply_event

    def remembering(self, correlation_id):
        event = get_reply_event(self, correlation_id)
        event.forget = lambda: self._reply_events.pop(correlation_id, None)
        return event

    wait_for_reply = RpcReply.result

    def result(self):
        if self.resp_body is None:
            import eventlet

            seconds = settings().rpc_timeout
            with eventlet.Timeout(seconds, False):   # False: leave the block, raise nothing
                self.resp_body = self.reply_event.wait()
            if self.resp_body is None:
                getattr(self.reply_event, "forget", lambda: None)()
                raise RpcTimeout(seconds)
        return wait_for_reply(self)

    result.bounded = True
    ReplyListener.get_reply_event = remembering
    RpcReply.result = result

