"""``self.db.one_statement()``: each statement is its own transaction, with no BEGIN or
COMMIT round trip (the next-account pull is one call of a PL/pgSQL function this way)."""
from psycopg.pq import TransactionStatus
from sqlalchemy import text

from auth.models import Base
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase, rpc


class StatementService(ServiceBase):
    name = "statements"
    db = Database(Base, relay=False)

    @rpc
    def transactions(self, one_statement):
        """The transaction ids of two statements, and whether a transaction is left open."""
        scope = self.db.one_statement() if one_statement else self.db.session()
        with scope as db:
            ids = [db.execute(text("SELECT txid_current()")).scalar() for _ in range(2)]
            pooled = db.connection if one_statement else db.connection().connection
            raw = pooled.dbapi_connection
            return {"same": ids[0] == ids[1],
                    "open": raw.pgconn.transaction_status != TransactionStatus.IDLE}


def test_one_statement_is_its_own_transaction_without_a_begin(container_factory,
                                                              rabbit_config, rpc_proxy):
    container_factory(StatementService, rabbit_config).start()
    proxy = rpc_proxy().statements
    assert proxy.transactions(False) == {"same": True, "open": True}   # a session's BEGIN
    assert proxy.transactions(True) == {"same": False, "open": False}
