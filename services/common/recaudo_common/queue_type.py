"""The type of the queues the services declare on RabbitMQ (``RECAUDO_QUEUE_TYPE``).

``classic`` (the default) suits one broker. ``quorum`` is for a RabbitMQ cluster: a
quorum queue is replicated on a majority of the nodes, so losing one loses no message
(RabbitMQ 4 removed the mirroring of classic queues). Every durable queue a service
consumes from, its ``rpc-<service>`` queue and its event handlers' ``evt-...`` queues, is
then declared with ``x-queue-type: quorum``. Reply queues (``rpc.reply-*``, expiring, one
per process) and exclusive or auto-deleted queues (the gateway's live subscriptions) stay
classic, as quorum queues cannot be any of those; they are declared classic explicitly,
so a vhost whose default queue type is quorum changes nothing for them.

RabbitMQ refuses to redeclare a queue as another type: to switch a running system,
stop the services and delete their queues (or move to a new vhost) first.
"""
from __future__ import annotations

from kombu import Queue
from nameko.messaging import QueueConsumer

from .config import settings

TYPES = ("classic", "quorum")
#: nameko's reply queues: per process, expiring when unused
REPLY_PREFIX = "rpc.reply-"


def replicable(queue: Queue) -> bool:
    """Whether ``queue`` may be a quorum queue: durable, shared, kept."""
    return (queue.durable and not queue.exclusive and not queue.auto_delete
            and not (queue.name or "").startswith(REPLY_PREFIX))


def check(queue_type: str) -> str:
    if queue_type not in TYPES:
        raise ValueError(f"RECAUDO_QUEUE_TYPE must be one of {', '.join(TYPES)}, "
                         f"not {queue_type!r}")
    return queue_type


def apply(queue: Queue, queue_type: str) -> Queue:
    """Set ``x-queue-type`` on ``queue``: ``queue_type`` where it can be, else classic."""
    kind = check(queue_type) if replicable(queue) else "classic"
    queue.queue_arguments = {**(queue.queue_arguments or {}), "x-queue-type": kind}
    return queue


def declare_queues_as_configured() -> None:
    """Make every nameko container of this process declare its queues with the configured
    type (once per process: ``run.py``, and the integration suite). The type is set where
    nameko turns its consumers' queues into kombu consumers, which declare them; it is
    read at each (re)connection, so a test may change the setting between containers."""
    check(settings().queue_type)  # a wrong value stops the process at start, not later
    if getattr(QueueConsumer.get_consumers, "recaudo_queue_type", False):
        return
    get_consumers = QueueConsumer.get_consumers

    def typed_get_consumers(self, consumer_cls, channel):
        queue_type = settings().queue_type
        for provider in self._providers:
            apply(provider.queue, queue_type)
        return get_consumers(self, consumer_cls, channel)

    typed_get_consumers.recaudo_queue_type = True
    QueueConsumer.get_consumers = typed_get_consumers
