"""Demo institutions (with the fixed ids the other services' demo data refers to)."""
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from recaudo_common import demo
from recaudo_common.db import make_engine

from .models import Institution


def seed_demo() -> None:
    engine = make_engine(pool_size=1)
    with engine.begin() as conn:
        conn.execute(insert(Institution).values(
            [{"id": i, "code": code, "name": name} for i, code, name in demo.INSTITUTIONS]
        ).on_conflict_do_nothing())
        conn.execute(text("SELECT setval(pg_get_serial_sequence('portfolio.institutions', 'id'),"
                          " GREATEST((SELECT max(id) FROM portfolio.institutions), 1))"))
    engine.dispose()
