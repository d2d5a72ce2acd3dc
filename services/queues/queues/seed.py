"""Demo data of the queues service that goes through its own RPCs, as a user's would
(``recaudo seed-live``, run by ``make up`` once the services answer; a no-op unless
RECAUDO_DEMO is on): the facts projection of every demo institution rebuilt from the
portfolio (its seed wrote the accounts before any service listened: ``resync_facts``, the
same rebuild an administrator runs); per demo institution a strategy of six queues served by
the demo team, applied (on BANCOMER a champion with a challenger taking 20 % of the
accounts); then a preventive campaign for BANCOMER (institution 1) that emails the
current accounts due within three days at 9:00 with the demo letter "Recordatorio de pago"
and holds 10 % out, run once so its page has results. Idempotent: a campaign of that name
is left as it is."""
from __future__ import annotations

import time

from recaudo_common import demo

INSTITUTION = 1
CAMPAIGN = "Recordatorio: vence en 3 días"
TEMPLATE = "Recordatorio de pago"
CONDITIONS = {"all": [{"field": "stage", "op": "eq", "value": "current"},
                      {"field": "days_to_next_due", "op": "between", "value": [0, 3]}]}


def _when(field, op, value):
    return {"field": field, "op": op, "value": value}


#: the demo strategy's queues: (name, conditions), first match wins
QUEUES = (
    ("Jurídico", {"all": [_when("stage", "eq", "litigation")]}),
    ("Aclaraciones y promesas", {"any": [_when("open_dispute", "eq", True),
                                         _when("open_promise", "eq", True)]}),
    ("Temprana 1–30", {"all": [_when("stage", "eq", "delinquent"),
                               _when("days_past_due", "between", [1, 30])]}),
    ("Media 31–90", {"all": [_when("stage", "eq", "delinquent"),
                             _when("days_past_due", "between", [31, 90])]}),
    ("Tardía 91 y más", {"all": [_when("stage", "eq", "delinquent"),
                                 _when("days_past_due", "gte", 91)]}),
    ("Preventiva", {"all": [_when("stage", "eq", "current"),
                            _when("days_to_next_due", "between", [0, 10])]}),
)
STRATEGY, CHALLENGER = "Estrategia demo", "Retadora: saldo primero"
BY_DPD = [{"field": "days_past_due", "direction": "desc"}, {"field": "balance", "direction": "desc"}]
BY_BALANCE = [{"field": "balance", "direction": "desc"}]


def seed_live(proxy, institutions: tuple[int, ...] | None = None) -> dict | None:
    """``proxy``: started service proxies (``proxy.queues``, ``proxy.messaging``) carrying a
    signed identity; ``institutions``: whose accounts to project (the demo ones by default),
    the first gets the campaign. Answers the campaign made, or None when there was nothing
    to do."""
    institutions = institutions or tuple(i for i, _, _ in demo.INSTITUTIONS)
    for institution_id in institutions:
        proxy.queues.resync_facts(institution_id)
    teams = {t["name"]: t["id"] for t in proxy.auth.list_teams()}
    for institution_id in institutions:
        team = teams.get(demo.TEAMS.get(institution_id, demo.TEAM))
        if team is not None:
            seed_strategy(proxy, institution_id, team,
                          challenger=institution_id == demo.CLIENT_INSTITUTION_ID)
    return seed_campaign(proxy, institutions[0])


def _queues(team_id: int, sort: list[dict]) -> list[dict]:
    return [{"name": name, "conditions": conditions, "team_id": team_id,
             "policy": "round_robin", "sort": sort} for name, conditions in QUEUES]


def seed_strategy(proxy, institution_id: int, team_id: int, challenger: bool = False,
                  wait_seconds: float = 60.0) -> dict | None:
    """The institution's demo strategy, saved and applied, unless one of its name exists.
    The queues service hears of the demo team by an event a moment after auth saved it:
    saving waits for that (the refusal names ``team_id``) up to ``wait_seconds``."""
    existing = {s["name"]: s for s in proxy.queues.list_strategies(institution_id)}
    if STRATEGY in existing:
        return None
    extra = {}
    if challenger:
        other = existing.get(CHALLENGER) or _save(proxy, {
            "institution_id": institution_id, "name": CHALLENGER,
            "queues": _queues(team_id, BY_BALANCE)}, wait_seconds)
        extra = {"challenger_id": other["id"], "challenger_share": 20}
    strategy = _save(proxy, {"institution_id": institution_id, "name": STRATEGY,
                             "queues": _queues(team_id, BY_DPD), **extra}, wait_seconds)
    proxy.queues.apply_strategy(strategy["id"])
    return strategy


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


def _save(proxy, data: dict, wait_seconds: float) -> dict:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return proxy.queues.save_strategy(data)
        except Exception as exc:  # noqa: BLE001 - the team's event may not be in yet
            if "team_id" not in str(getattr(exc, "fields", exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
