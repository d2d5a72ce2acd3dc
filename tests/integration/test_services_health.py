"""Every service, run in a real container on the broker, answers health from its database."""
import pytest

from recaudo_common.config import SERVICES
from recaudo_common.run import service_class


@pytest.mark.parametrize("name", SERVICES)
def test_service_health_over_rabbitmq(name, container_factory, rabbit_config, rpc_proxy):
    container_factory(service_class(name), rabbit_config).start()
    answer = getattr(rpc_proxy(), name).health()
    assert answer["service"] == name
    assert answer["database"] == "ok"
    assert answer["latency_ms"] >= 0
