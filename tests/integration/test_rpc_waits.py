"""A service's RPC to another service waits at most ``RECAUDO_RPC_TIMEOUT`` for its reply
(``resilience.bound_rpc_waits``). nameko waits for ever: a reply lost with the broker (a
restart, a reset to a fresh node) held the calling worker for good, and a container whose
workers were all held answered nothing more, its health check included. Through the real
broker, with two services of the test's own."""
import time

import eventlet
import pytest
from nameko.exceptions import RpcTimeout
from nameko.rpc import ReplyListener, RpcProxy, RpcReply, rpc
from nameko.testing.services import entrypoint_hook

from recaudo_common import resilience
from recaudo_common.config import settings


class SlowAnswerer:
    name = "slow_answerer"

    @rpc
    def answer(self, seconds):
        eventlet.sleep(seconds)
        return "answered"


class Asker:
    name = "asker"
    slow = RpcProxy("slow_answerer")

    @rpc
    def ask(self, seconds):
        return self.slow.answer(seconds)


@pytest.fixture
def bounded(monkeypatch):
    """The services' bound (one second here), and nameko's own waits back after."""
    saved = RpcReply.result, ReplyListener.get_reply_event
    monkeypatch.setenv("RECAUDO_RPC_TIMEOUT", "1")
    settings.cache_clear()
    resilience.bound_rpc_waits()
    yield
    RpcReply.result, ReplyListener.get_reply_event = saved
    monkeypatch.undo()
    settings.cache_clear()


def test_a_reply_that_does_not_come_frees_the_worker_as_an_outage(
        bounded, container_factory, rabbit_config):
    container_factory(SlowAnswerer, rabbit_config).start()
    asker = container_factory(Asker, rabbit_config)
    asker.start()
    with entrypoint_hook(asker, "ask") as ask:
        started = time.monotonic()
        with pytest.raises(RpcTimeout) as late:
            ask(3)
        assert 1 <= time.monotonic() - started < 2.5
    assert resilience.unavailable(late.value) == "service"   # answered 503, event put back
    listener = next(d for d in asker.extensions if isinstance(d, ReplyListener))
    assert listener._reply_events == {}                     # the call is forgotten
    eventlet.sleep(2.5)                                      # its late reply is dropped
    with entrypoint_hook(asker, "ask") as ask:
        assert ask(0) == "answered"                          # and the next call is fine
