"""Each service's own entrypoints, with its dependencies mocked (nameko worker_factory)."""
import pytest
from nameko.testing.services import worker_factory

from recaudo_common.config import SERVICES
from recaudo_common.run import service_class


@pytest.fixture(autouse=True)
def object_store(monkeypatch):
    """The object store the documents service also reports on, answering (mocked too)."""
    from unittest.mock import MagicMock

    from recaudo_common import storage

    monkeypatch.setattr(storage, "client", MagicMock())
    monkeypatch.setattr(storage, "bucket", lambda: "recaudo-documents")


@pytest.mark.parametrize("name", SERVICES)
def test_health_reports_the_service_and_its_database(name):
    cls = service_class(name)
    assert cls.name == name
    service = worker_factory(cls)
    service.db.health.return_value = {"database": "ok", "latency_ms": 1.0}
    # services add what else they depend on (the documents service: the object store)
    assert service.health().items() >= {"service": name, "database": "ok",
                                         "latency_ms": 1.0}.items()
    service.db.health.assert_called_once_with()


@pytest.mark.parametrize("name", SERVICES)
def test_health_fails_when_the_database_does(name):
    service = worker_factory(service_class(name))
    service.db.health.side_effect = OSError("connection refused")
    with pytest.raises(OSError):
        service.health()
