"""Result-code catalogues and settings of the demo institutions (``recaudo seed``).

Other institutions get the same defaults the first time the service touches them
(``catalogue.ensure_catalogue``), so a real installation needs no seed at all.
Idempotent: an institution that has a catalogue keeps it as its admin left it.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from recaudo_common import demo
from recaudo_common.db import make_engine

from .catalogue import ensure_catalogue


def seed_demo() -> None:
    engine = make_engine(pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            for institution_id, _, _ in demo.INSTITUTIONS:
                ensure_catalogue(session, institution_id)
    finally:
        engine.dispose()
