"""psycopg 3 must not block the eventlet hub: concurrent workers overlap their queries."""
import time

import psycopg.waiting
from sqlalchemy import text

from auth.models import Base
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase, rpc

SLEEP = 0.3
CALLS = 10


class NapperService(ServiceBase):
    name = "napper"
    db = Database(Base, relay=False)

    @rpc
    def nap(self, seconds):
        with self.db.session() as session:
            session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        return seconds


def test_db_access_is_cooperative(container_factory, rabbit_config, rpc_proxy):
    container_factory(NapperService, rabbit_config).start()
    proxy = rpc_proxy()
    proxy.napper.nap(0)  # warm the pool and the queues
    started = time.perf_counter()
    replies = [proxy.napper.nap.call_async(SLEEP) for _ in range(CALLS)]
    assert [reply.result() for reply in replies] == [SLEEP] * CALLS
    elapsed = time.perf_counter() - started
    serial = SLEEP * CALLS
    assert psycopg.waiting.wait is psycopg.waiting.wait_select
    assert elapsed < serial / 2, f"{CALLS} concurrent naps took {elapsed:.2f}s (serial {serial}s)"
