"""Integration tests: real RabbitMQ (nameko's fixtures give each test a throwaway
vhost) and the real PostgreSQL test database (``make test`` points the settings at
``recaudo_test``; migrations are applied once per session)."""
import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine

from recaudo_common import migrations
from recaudo_common.config import settings


@pytest.fixture(scope="session", autouse=True)
def migrated_database():
    migrations.upgrade()


@pytest.fixture(scope="session")
def engine():
    engine = create_engine(settings().database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rpc_proxy(rabbit_config):
    """A factory of started cluster proxies on this test's vhost."""
    started = []

    def make(context_data=None, timeout=10):
        proxy = ClusterRpcProxy(rabbit_config, context_data=context_data, timeout=timeout)
        started.append(proxy)
        return proxy.start()

    yield make
    for proxy in started:
        proxy.stop()
