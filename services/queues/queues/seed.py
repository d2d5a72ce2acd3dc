"""Demo data of the queues service that goes through its own RPCs, as a user's would
(``recaudo seed-live``, run by ``make up`` once the services answer; a no-op unless
RECAUDO_DEMO is on): the facts projection of every demo institution rebuilt from the
portfolio (its seed wrote the accounts before any service listened: ``resync_facts``, the
same rebuild an administrator runs), then a preventive campaign for BANCOMER (institution 1) that emails the
current accounts due within three days at 9:00 with the demo letter "Recordatorio de pago"
and holds 10 % out, run once so its page has results. Idempotent: a campaign of that name
is left as it is."""
from __future__ import annotations

from recaudo_common import demo

INSTITUTION = 1
CAMPAIGN = "Recordatorio: vence en 3 días"
TEMPLATE = "Recordatorio de pago"
CONDITIONS = {"all": [{"field": "stage", "op": "eq", "value": "current"},
                      {"field": "days_to_next_due", "op": "between", "value": [0, 3]}]}


def seed_live(proxy, institutions: tuple[int, ...] | None = None) -> dict | None:
    """``proxy``: started service proxies (``proxy.queues``, ``proxy.messaging``) carrying a
    signed identity; ``institutions``: whose accounts to project (the demo ones by default),
    the first gets the campaign. Answers the campaign made, or None when there was nothing
    to do."""
    institutions = institutions or tuple(i for i, _, _ in demo.INSTITUTIONS)
    for institution_id in institutions:
        proxy.queues.resync_facts(institution_id)
    return seed_campaign(proxy, institutions[0])


def seed_campaign(proxy, institution_id: int = INSTITUTION) -> dict | None:
    """The demo campaign, unless one of its name exists (or the demo letter is missing)."""
    if any(c["name"] == CAMPAIGN for c in proxy.queues.list_campaigns(institution_id)):
        return None
    template = next((t for t in proxy.messaging.list_templates(institution_id)
                     if t["name"] == TEMPLATE), None)
    if template is None:
        return None
    campaign = proxy.queues.save_campaign({
        "institution_id": institution_id, "name": CAMPAIGN, "conditions": CONDITIONS,
        "channel": "email", "template_id": template["id"], "language": "es", "send_hour": 9,
        "holdout_share": 10})
    proxy.queues.run_campaign(campaign["id"])
    return campaign
