"""RECAUDO_QUEUE_TYPE on the real broker: with ``quorum`` a service's RPC and event queues
are quorum queues and its reply queues stay classic; the service answers RPCs through them. (``deploy/test.sh`` also runs a set of integration modules whole with
RECAUDO_QUEUE_TYPE=quorum.)"""
from __future__ import annotations

import pytest

from activities.service import ActivitiesService
from recaudo_common import queue_type
from recaudo_common.config import settings


@pytest.fixture
def quorum(monkeypatch):
    monkeypatch.setenv("RECAUDO_QUEUE_TYPE", "quorum")
    settings.cache_clear()
    yield
    monkeypatch.undo()
    settings.cache_clear()


def _types(rabbit_manager, vhost) -> dict[str, str]:
    return {q["name"]: q.get("type") or q["arguments"].get("x-queue-type", "classic")
            for q in rabbit_manager.get_queues(vhost)}


def test_quorum_makes_rpc_and_event_queues_quorum_and_leaves_reply_queues_classic(
        quorum, container_factory, rabbit_config, rabbit_manager, rpc_proxy):
    container = container_factory(ActivitiesService, rabbit_config)
    container.start()
    proxy = rpc_proxy()
    assert proxy.activities.health()["service"] == "activities"   # an RPC through quorum
    types = _types(rabbit_manager, rabbit_config["vhost"])
    assert types["rpc-activities"] == "quorum"
    events = {n: t for n, t in types.items() if n.startswith("evt-")}
    assert events and set(events.values()) == {"quorum"}, events
    replies = {n: t for n, t in types.items() if n.startswith("rpc.reply-")}
    assert replies and set(replies.values()) == {"classic"}, replies


def test_classic_is_the_default(container_factory, rabbit_config, rabbit_manager):
    assert settings().queue_type == "classic"
    container_factory(ActivitiesService, rabbit_config).start()
    types = _types(rabbit_manager, rabbit_config["vhost"])
    assert types["rpc-activities"] == "classic"


def test_an_unknown_queue_type_stops_the_process_at_start(monkeypatch):
    monkeypatch.setenv("RECAUDO_QUEUE_TYPE", "mirrored")
    settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="RECAUDO_QUEUE_TYPE must be one of classic, quorum"):
            queue_type.declare_queues_as_configured()
    finally:
        monkeypatch.undo()
        settings.cache_clear()
