"""How Recaudo's processes publish RPC messages through nameko (called once per process,
by ``run.py`` for the services and by the gateway's app factory).

RPC requests and replies go out without publisher confirms. The caller waits for the
reply anyway, so a message the broker lost is an ``RpcTimeout`` (answered 503, like a
stopped service), while a confirm costs a broker round trip on both sides of every call:
turning them off took the gateway's authenticated ping from 56 to 103 requests/s on the
2-core machine. Events keep their confirms: an event is accepted work, and the outbox
relay asks for confirms explicitly (``outbox.py``).
"""
from __future__ import annotations

import sys

from nameko.amqp.publish import Publisher


def tune_rpc_publishing() -> None:
    Publisher.use_confirms = False
    # Outside eventlet (the gateway's threads) kombu tries to import the optional
    # librabbitmq C client on every new Connection, and nameko makes one per publish: the
    # failed import searched sys.path on every RPC (6 % of the gateway's time). None in
    # sys.modules makes that import fail at once.
    sys.modules.setdefault("librabbitmq", None)
