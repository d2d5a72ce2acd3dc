"""How Recaudo's processes publish RPC messages through nameko (called once per process,
by ``run.py`` for the services and by the gateway's app factory).

RPC requests and replies go out without publisher confirms. The caller waits for the
reply anyway, so a message the broker lost is an ``RpcTimeout`` (answered 503, like a
stopped service), while a confirm costs a broker round trip on both sides of every call:
turning them off took the gateway's authenticated ping from 56 to 103 requests/s on the
2-core machine. Events keep their confirms: an event is accepted work, and the outbox
relay asks for confirms explicitly (``outbox.py``).

Except for a while after the broker was seen gone (``confirm_for_a_while``): a broker
that comes back (a fresh node above all) takes requests before every service has bound
its queue again, and a request nobody is bound to is dropped in silence; the caller would
wait the whole RPC timeout (30 s) for it. With confirms, nameko learns it was unroutable
and raises ``UnknownService`` at once (answered 503, tried again by the client).

While the broker is down a publish fails within about two seconds (nameko's defaults
retried for some 20 s, holding the gateway's request and the worker): the gateway then
answers 503 at once, a service leaves the request to be delivered again, and the outbox
relay tries again on its next round.
"""
from __future__ import annotations

import sys
import time

from nameko.amqp.publish import Publisher

#: connecting: one retry after 0.2 s; publishing: two more attempts, 0.2 s and 0.5 s apart
CONNECT_RETRY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.3,
                 "interval_max": 0.5}
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3,
                 "interval_max": 0.5}


#: how long after the broker was last seen gone RPC requests are published with confirms
CONFIRM_AFTER_OUTAGE_SECONDS = 15.0
_confirm_until = 0.0   # time.monotonic()


def confirm_for_a_while(seconds: float = CONFIRM_AFTER_OUTAGE_SECONDS) -> None:
    """The broker was seen gone: publish RPC requests with confirms for ``seconds``."""
    global _confirm_until
    _confirm_until = max(_confirm_until, time.monotonic() + seconds)


def _use_confirms(publisher: Publisher) -> bool:
    """Asked for explicitly (the outbox relay), or in the while after an outage."""
    explicit = publisher.__dict__.get("_use_confirms")
    return explicit if explicit is not None else time.monotonic() < _confirm_until


def _set_use_confirms(publisher: Publisher, value: bool) -> None:
    publisher.__dict__["_use_confirms"] = value


def tune_rpc_publishing() -> None:
    Publisher.use_confirms = property(_use_confirms, _set_use_confirms)
    Publisher.retry_policy = PUBLISH_RETRY
    # a dict of its own for every publish: nameko writes ``confirm_publish`` into it, and
    # the connection pools are keyed by it (one shared dict, written by threads publishing
    # with and without confirms, would hand a connection to the wrong pool)
    Publisher.transport_options = property(lambda _: dict(CONNECT_RETRY))
    # Outside eventlet (the gateway's threads) kombu tries to import the optional
    # librabbitmq C client on every new Connection, and nameko makes one per publish: the
    # failed import searched sys.path on every RPC (6 % of the gateway's time). None in
    # sys.modules makes that import fail at once.
    sys.modules.setdefault("librabbitmq", None)
