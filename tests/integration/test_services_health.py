"""Every service, run in a real container on the broker, answers health from its database."""
import time

import pytest

from recaudo_common.config import SERVICES
from recaudo_common.run import service_class


@pytest.mark.parametrize("name", SERVICES)
def test_service_health_over_rabbitmq(name, container_factory, rabbit_config, rpc_proxy,
                                     s3_server):
    """(The documents service's health also asks the object store: ``s3_server``.)"""
    container_factory(service_class(name), rabbit_config).start()
    proxy = getattr(rpc_proxy(), name)
    started = time.perf_counter()
    answer = proxy.health()
    round_trip_ms = (time.perf_counter() - started) * 1000
    assert answer["service"] == name
    assert answer["database"] == "ok"
    # the database's latency is measured (a query takes some time) within this very call
    assert isinstance(answer["latency_ms"], float)
    assert 0 < answer["latency_ms"] <= round_trip_ms, (answer, round_trip_ms)
