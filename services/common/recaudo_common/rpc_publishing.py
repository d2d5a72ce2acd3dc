"""How Recaudo's processes publish RPC messages through nameko (called once per process,
by ``run.py`` for the services and by the gateway's app factory).

RPC requests and replies go out without publisher confirms. The caller waits for the
reply anyway, so a message the broker lost is an ``RpcTimeout`` (answered 503, like a
stopped service), while a confirm costs a broker round trip on both sides of every call:
turning them off took the gateway's authenticated ping from 56 to 103 requests/s on the
2-core machine. Events keep their confirms: an event is accepted work, and the outbox
relay asks for confirms explicitly (``outbox.py``).

While the broker is down a publish fails within about two seconds (nameko's defaults
retried for some 20 s, holding the gateway's request and the worker): the gateway then
answers 503 at once, a service leaves the request to be delivered again, and the outbox
relay tries again on its next round.
"""
from __future__ import annotations

import sys

from nameko.amqp.publish import Publisher

#: connecting: one retry after 0.2 s; publishing: two more attempts, 0.2 s and 0.5 s apart
CONNECT_RETRY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.3,
                 "interval_max": 0.5}
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3,
                 "interval_max": 0.5}


def tune_rpc_publishing() -> None:
    Publisher.use_confirms = False
    Publisher.retry_policy = PUBLISH_RETRY
    Publisher.transport_options = dict(CONNECT_RETRY)
    # Outside eventlet (the gateway's threads) kombu tries to import the optional
    # librabbitmq C client on every new Connection, and nameko makes one per publish: the
    # failed import searched sys.path on every RPC (6 % of the gateway's time). None in
    # sys.modules makes that import fail at once.
    sys.modules.setdefault("librabbitmq", None)
