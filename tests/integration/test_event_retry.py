"""An event whose handler failed for a reason other than an outage gets one more delivery
(``resilience.EventHandler``): nameko drops it at once, and a handler that lost a race
with a concurrent write (messaging adding its result codes from two workers) lost the
agreement it was sending. A handler that fails again is logged and dropped, not looped.
Through the real broker."""
import eventlet
import pytest
from nameko.standalone.events import event_dispatcher

from recaudo_common.service import event_handler

from .helpers import wait_for

CALLS: list[str] = []


class Flaky:
    name = "flaky_consumer"

    @event_handler("retry_probe", "happened")
    def on_happened(self, payload):
        CALLS.append(payload["what"])
        if payload["what"] == "always" or CALLS.count(payload["what"]) == 1:
            raise RuntimeError(f"{payload['what']} failed")


@pytest.fixture
def flaky(container_factory, rabbit_config):
    CALLS.clear()
    container = container_factory(Flaky, rabbit_config)
    container.start()
    return event_dispatcher(rabbit_config)


def test_a_handler_that_failed_once_gets_the_event_again(flaky):
    flaky("retry_probe", "happened", {"what": "race"})
    assert wait_for(lambda: CALLS == ["race", "race"], 10), CALLS


def test_one_that_fails_again_is_dropped_after_its_second_delivery(flaky):
    flaky("retry_probe", "happened", {"what": "always"})
    assert wait_for(lambda: CALLS == ["always", "always"], 10), CALLS
    eventlet.sleep(2.5)
    assert CALLS == ["always", "always"]
