"""The demo's scheduled report (``recaudo seed-live``): the supervisor's weekly productivity
report of their team, sent to them on Mondays at 7 a.m.

Made through ``save_schedule`` as the supervisor themself (their signed identity from
``auth.identity_for``, as a scheduled run gets it), so the report is probed with their scope
and the schedule is theirs in "Reportes > Envíos programados". Idempotent: a supervisor who
has a schedule keeps theirs.
"""
from __future__ import annotations

from nameko.standalone.rpc import ClusterRpcProxy

from recaudo_common import demo
from recaudo_common.config import settings
from recaudo_common.identity import IDENTITY_KEY

OWNER = "supervisor"
SCHEDULE = {"report": "productivity", "institution_id": None,
            "filters": {"group_by": ["agent"]}, "format": "xlsx", "frequency": "weekly",
            "weekday": 0, "hour": 7, "time_zone": demo.ZONE,
            "recipients": [f"{OWNER}@recaudo.example"],
            "subject": "Productividad semanal del equipo"}


def seed_live(proxy) -> dict:
    """The schedule made (or found); ``proxy``: started proxies as the platform."""
    identity = proxy.auth.identity_for(demo.USER_IDS[OWNER])["identity"]
    with ClusterRpcProxy(settings().nameko, context_data={IDENTITY_KEY: identity},
                         timeout=120) as owner:
        mine = owner.reports.list_schedules()
        return mine[0] if mine else owner.reports.save_schedule(SCHEDULE)
