"""RPC requests go out without publisher confirms, except for a while after the broker was
seen gone (``recaudo_common.rpc_publishing``): a broker back as a fresh node takes requests
before every service has bound its queue again, and such a request must fail at once
(``UnknownService``, a 503 the client tries again) instead of waiting the RPC timeout for
a reply that can never come. Through the real broker."""
import time

import pytest
from nameko.amqp.publish import Publisher
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from recaudo_common import rpc_publishing


@pytest.fixture
def tuned():
    """The processes' publishing settings, and nameko's own back after the test."""
    saved = {k: Publisher.__dict__[k] for k in ("use_confirms", "retry_policy",
                                                "transport_options")}
    rpc_publishing.tune_rpc_publishing()
    rpc_publishing._confirm_until = 0.0
    yield
    rpc_publishing._confirm_until = 0.0
    for key, value in saved.items():
        setattr(Publisher, key, value)


def test_a_request_nobody_is_bound_to_waits_its_timeout_without_confirms(tuned, rabbit_config):
    with ClusterRpcProxy(rabbit_config, timeout=1) as proxy:
        started = time.monotonic()
        with pytest.raises(RpcTimeout):
            proxy.nobody_here.ping()
        assert time.monotonic() - started >= 1


def test_after_an_outage_it_is_refused_at_once(tuned, rabbit_config):
    rpc_publishing.confirm_for_a_while()
    with ClusterRpcProxy(rabbit_config, timeout=10) as proxy:
        started = time.monotonic()
        with pytest.raises(UnknownService):
            proxy.nobody_here.ping()
        assert time.monotonic() - started < 1


def test_the_while_ends(tuned, rabbit_config):
    rpc_publishing.confirm_for_a_while(0.2)
    time.sleep(0.3)
    with ClusterRpcProxy(rabbit_config, timeout=1) as proxy:
        with pytest.raises(RpcTimeout):
            proxy.nobody_here.ping()


def test_a_publisher_asking_for_confirms_keeps_them(tuned):
    assert Publisher("amqp://", use_confirms=True).use_confirms is True
    assert Publisher("amqp://").use_confirms is False
    rpc_publishing.confirm_for_a_while()
    assert Publisher("amqp://").use_confirms is True
    assert Publisher("amqp://", use_confirms=False).use_confirms is False
