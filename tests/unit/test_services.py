"""Each service's own entrypoints, with its dependencies mocked (nameko worker_factory),
and its health with a database that does not answer."""
from types import SimpleNamespace

import pytest
from nameko.testing.services import worker_factory

from recaudo_common.config import SERVICES
from recaudo_common.db import ServiceDatabase, make_engine
from recaudo_common.errors import Unavailable
from recaudo_common.resilience import as_unavailable
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
def test_health_fails_naming_the_database_when_it_is_down(name):
    """Health asks the database itself: with the service's engine pointed at a port nobody
    listens on, it raises what the RPC answers as ``Unavailable`` naming the database (and
    the gateway's /healthz shows the service failing), not a report that all is well."""
    service = worker_factory(service_class(name))
    engine = make_engine("postgresql+psycopg://recaudo@127.0.0.1:9/recaudo", pool_size=1)
    service.db = ServiceDatabase(SimpleNamespace(engine=engine))
    try:
        with pytest.raises(Exception) as raised:
            service.health()
    finally:
        engine.dispose()
    answered = as_unavailable((raised.type, raised.value, raised.tb))[1]
    assert isinstance(answered, Unavailable), repr(raised.value)
    assert answered.fields == {"unavailable": "database"}
