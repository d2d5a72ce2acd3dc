"""Preventive campaigns (campañas preventivas de vencimientos): reminders before a due date.

A campaign picks accounts with the queues' own rule engine over the facts projection
(``rules.compile_condition`` on ``account_facts``: ``stage = current``,
``days_to_next_due`` 0-3, ``balance`` over an amount…), once a day at its hour in the
institution's zone, and sends each a message from a messaging template (email, SMS or
letter; by email or SMS with the debtor's personal portal link if the campaign says so).
"Days to the next due date" is counted from the institution's day: the pick runs with the
transaction's time zone set to the institution's, so ``current_date`` is its date.

An account is picked once per campaign and due date (``cycle_date``; the run's day for an
account without one), whatever the number of runs. A hold-out share of the picked
accounts, chosen by a hash of (campaign, account) so the same account always falls on
the same side, is sent nothing: comparing how many of each group paid by the due date is
the measure of whether the reminders work.

Picking is one INSERT … SELECT per run; sending is done afterwards by a timer, a batch of
pending targets at a time claimed with ``FOR UPDATE SKIP LOCKED`` (several instances
never send the same target; a retry after a crash is answered by messaging's idempotency
key ``campaign-<campaign>-<account>-<due date>``).
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, String, and_, case, cast, func, literal, select, text
from sqlalchemy.dialects.postgresql import BIT, insert
from sqlalchemy.orm import Session

from recaudo_common.contact_policy import DEFAULT_ZONE

from . import rules
from .models import AccountFacts as F
from .models import (Campaign, CampaignMessage, CampaignRun, CampaignTarget, InstitutionRules)

HOLDOUT_BUCKETS = 100
SEND_BATCH = 20
SEND_INTERVAL = 5
CENT = Decimal("0.01")
#: why a message was not sent: the contact policy's causes and messaging's own
REFUSAL_CAUSES = ("do_not_contact", "outside_hours", "no_address")


# --- hold-out ---------------------------------------------------------------------------------

def holdout_bucket(campaign_id: int, account_id: int) -> int:
    """0-99, fixed for a (campaign, account): the first 32 bits of an MD5, modulo 100."""
    digest = hashlib.md5(f"{campaign_id}:{account_id}".encode()).hexdigest()
    return int(digest[:8], 16) % HOLDOUT_BUCKETS


def in_holdout(campaign_id: int, account_id: int, share: int) -> bool:
    return holdout_bucket(campaign_id, account_id) < share


def _holdout_bucket_sql(campaign_id: int, account_column):
    """``holdout_bucket`` in SQL, for the set-based pick (a test checks both agree)."""
    digest = func.md5(literal(f"{int(campaign_id)}:") + cast(account_column, String))
    first_32_bits = cast(literal("x") + func.substr(digest, 1, 8), BIT(32))
    return cast(first_32_bits, BigInteger) % HOLDOUT_BUCKETS


# --- the institution's day -----------------------------------------------------------------------

def institution_zone(session: Session, institution_id: int) -> str:
    zone = session.execute(select(InstitutionRules.time_zone).where(
        InstitutionRules.institution_id == institution_id)).scalar_one_or_none()
    return zone or DEFAULT_ZONE


def use_zone(session: Session, zone: str) -> None:
    """This transaction's dates in ``zone``: ``current_date`` is the institution's day."""
    session.execute(text("SELECT set_config('TimeZone', :zone, true)"), {"zone": zone})


def local_now(zone: str, now: datetime | None = None) -> datetime:
    return (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(zone))


def due_today(campaign: Campaign, zone: str, now: datetime | None = None) -> date | None:
    """The local day whose scheduled run is due now, or None: from ``send_hour`` on, and not
    on the day of a campaign created after that day's hour (it starts the next day)."""
    local = local_now(zone, now)
    if local.hour < campaign.send_hour:
        return None
    scheduled = local.replace(hour=campaign.send_hour, minute=0, second=0, microsecond=0)
    if campaign.created_at is not None and campaign.created_at > scheduled:
        return None
    return local.date()


# --- picking -------------------------------------------------------------------------------------

def _matching(campaign: Campaign):
    """The accounts the campaign's conditions pick now (their facts and hold-out side)."""
    holdout = _holdout_bucket_sql(campaign.id, F.account_id) < campaign.holdout_share
    return select(F.account_id, F.next_due_date, F.balance, holdout.label("holdout")).where(
        F.institution_id == campaign.institution_id, rules.compile_condition(campaign.conditions))


def preview(session: Session, institution_id: int, conditions: dict, holdout_share: int,
            campaign_id: int | None = None) -> dict:
    """How many accounts the conditions pick today and how they split (nothing is kept).
    The hold-out is drawn per campaign: before one is saved, its split is an estimate."""
    use_zone(session, institution_zone(session, institution_id))
    probe = Campaign(id=campaign_id or 0, institution_id=institution_id, conditions=conditions,
                     holdout_share=holdout_share)
    rows = _matching(probe).subquery()
    total, held, balance = session.execute(select(
        func.count(), func.count().filter(rows.c.holdout),
        func.coalesce(func.sum(rows.c.balance), 0)).select_from(rows)).one()
    session.rollback()
    return {"targeted": total, "held_out": held, "to_send": total - held,
            "balance": Decimal(balance).quantize(CENT)}


def claim_scheduled_run(session: Session, campaign: Campaign, day: date) -> CampaignRun | None:
    """The day's scheduled run if this transaction is the one to make it (a unique
    (campaign, day) row: with several instances, the INSERT that wins does the work)."""
    run_id = session.execute(insert(CampaignRun).values(
        campaign_id=campaign.id, day=day, kind="scheduled").on_conflict_do_nothing(
        index_elements=["campaign_id", "day"], index_where=text("kind = 'scheduled'"))
        .returning(CampaignRun.id)).scalar_one_or_none()
    return session.get(CampaignRun, run_id) if run_id is not None else None


def manual_run(session: Session, campaign: Campaign, day: date, user_id: int) -> CampaignRun:
    run = CampaignRun(campaign_id=campaign.id, day=day, kind="manual", created_by=user_id)
    session.add(run)
    session.flush()
    return run


def pick(session: Session, campaign: Campaign, run: CampaignRun, zone: str) -> CampaignRun:
    """Write the run's targets in one INSERT … SELECT: the accounts picked now that were not
    picked for the same due date before, each pending or held out."""
    use_zone(session, zone)
    rows = _matching(campaign).subquery()
    insert_targets = insert(CampaignTarget).from_select(
        ["campaign_id", "run_id", "account_id", "day", "due_date", "cycle_date", "balance",
         "holdout", "state"],
        select(literal(campaign.id), literal(run.id), rows.c.account_id, literal(run.day),
               rows.c.next_due_date, func.coalesce(rows.c.next_due_date, literal(run.day)),
               rows.c.balance, rows.c.holdout,
               case((rows.c.holdout, "held_out"), else_="pending"))
    ).on_conflict_do_nothing(constraint="uq_campaign_targets_cycle").returning(
        CampaignTarget.holdout)
    picked = session.execute(insert_targets).scalars().all()
    run.targeted, run.held_out = len(picked), sum(1 for h in picked if h)
    session.flush()
    return run


# --- sending ---------------------------------------------------------------------------------------

def claim_pending(session: Session, limit: int = SEND_BATCH) -> list[tuple[CampaignTarget, Campaign]]:
    """A batch of pending targets of active campaigns, locked for this transaction (others
    skip them)."""
    return [tuple(r) for r in session.execute(
        select(CampaignTarget, Campaign).join(Campaign, Campaign.id == CampaignTarget.campaign_id)
        .where(CampaignTarget.state == "pending", Campaign.state == "active")
        .order_by(CampaignTarget.id).limit(limit)
        .with_for_update(of=CampaignTarget, skip_locked=True)).all()]


def message_request(target: CampaignTarget, campaign: Campaign) -> dict:
    return {"account_id": target.account_id, "template_id": campaign.template_id,
            "language": campaign.language, "channel": campaign.channel,
            "campaign_id": campaign.id, "idempotency_key": idempotency_key(target),
            "portal_link": campaign.portal_link, "run_id": target.run_id}


def idempotency_key(target: CampaignTarget) -> str:
    """What the target is (campaign, account, due date): a retry of its send is answered
    the first message, and no other send can share the key."""
    return f"campaign-{target.campaign_id}-{target.account_id}-{target.cycle_date:%Y%m%d}"


def record_answer(target: CampaignTarget, answer: dict) -> None:
    """Messaging's answer to one send: refused (and why) or the queued message."""
    target.handled_at = datetime.now(timezone.utc)
    if answer.get("state") == "refused":
        target.state = "refused"
        target.refusal_cause = (answer.get("cause") or "refused")[:30]
        target.refusal_reason = (answer.get("reason") or "")[:300]
        return
    target.state = "sent"
    target.message_uuid = answer["uuid"]
    target.activity_id = answer.get("activity_id")


def record_failure(target: CampaignTarget, reason: str) -> None:
    """A send messaging could not take (no mailbox, inactive template, account gone)."""
    target.handled_at = datetime.now(timezone.utc)
    target.state = "failed"
    target.refusal_reason = reason[:300]


def record_delivery(session: Session, payload: dict, delivered: bool) -> None:
    if not payload.get("campaign_id"):
        return
    values = {"message_uuid": payload["message_uuid"], "campaign_id": payload["campaign_id"],
              "delivered": delivered, "reason": (payload.get("reason") or None) and
              payload["reason"][:300]}
    # a bounce after "sent" turns it failed; nothing turns a failure back
    session.execute(insert(CampaignMessage).values(**values).on_conflict_do_update(
        index_elements=["message_uuid"],
        set_={"delivered": and_(CampaignMessage.delivered, literal(delivered)),
              "reason": func.coalesce(values["reason"], CampaignMessage.reason),
              "at": func.now()}))


_PAID = text("""
UPDATE queues.campaign_targets
SET paid_on = LEAST(COALESCE(paid_on, :value_date), :value_date),
    paid_amount = paid_amount + :amount
WHERE account_id = :account_id AND :value_date BETWEEN day AND cycle_date
""")


def record_payment(session: Session, payment: dict) -> None:
    """A payment from the day an account was picked up to its due date counts as paid
    before the due date (for both groups: the hold-out is the comparison)."""
    session.execute(_PAID, {"account_id": payment["account_id"],
                            "value_date": payment["value_date"], "amount": payment["amount"]})


# --- the report --------------------------------------------------------------------------------------

def _rate(part: int, whole: int) -> str | None:
    return str((Decimal(part) * 100 / whole).quantize(Decimal("0.1"))) if whole else None


def report(session: Session, campaign: Campaign) -> dict:
    """Targeted, sent, refused by cause, delivered, and paid by the due date: the contacted
    group (all not held out, sent or not) against the hold-out, and per run."""
    t = CampaignTarget
    groups = {h: (n, paid, amount, balance) for h, n, paid, amount, balance in session.execute(
        select(t.holdout, func.count(), func.count(t.paid_on), func.coalesce(func.sum(t.paid_amount), 0),
               func.coalesce(func.sum(t.balance), 0))
        .where(t.campaign_id == campaign.id).group_by(t.holdout))}
    states = session.execute(select(t.state, t.refusal_cause, func.count())
                             .where(t.campaign_id == campaign.id)
                             .group_by(t.state, t.refusal_cause)).all()
    by_state: dict[str, int] = {}
    refused: dict[str, int] = {}
    for state, cause, n in states:
        by_state[state] = by_state.get(state, 0) + n
        if state == "refused":
            refused[cause or "refused"] = refused.get(cause or "refused", 0) + n
    delivered, undelivered = session.execute(
        select(func.count().filter(CampaignMessage.delivered),
               func.count().filter(~CampaignMessage.delivered))
        .select_from(t).join(CampaignMessage, CampaignMessage.message_uuid == t.message_uuid)
        .where(t.campaign_id == campaign.id)).one()

    def group(holdout: bool) -> dict:
        n, paid, amount, balance = groups.get(holdout, (0, 0, 0, 0))
        return {"accounts": n, "paid": paid, "paid_rate": _rate(paid, n),
                "paid_amount": Decimal(amount).quantize(CENT),
                "balance": Decimal(balance).quantize(CENT)}

    contacted, holdout = group(False), group(True)
    lift = None
    if contacted["paid_rate"] is not None and holdout["paid_rate"] is not None:
        lift = str(Decimal(contacted["paid_rate"]) - Decimal(holdout["paid_rate"]))
    runs = session.execute(
        select(CampaignRun, func.count(t.id).filter(t.state == "sent"),
               func.count(t.id).filter(t.state == "refused"),
               func.count(t.id).filter(t.state == "pending"))
        .outerjoin(t, t.run_id == CampaignRun.id).where(CampaignRun.campaign_id == campaign.id)
        .group_by(CampaignRun.id).order_by(CampaignRun.id.desc()).limit(30)).all()
    return {
        "campaign_id": campaign.id,
        "targeted": contacted["accounts"] + holdout["accounts"],
        "held_out": holdout["accounts"],
        "pending": by_state.get("pending", 0),
        "sent": by_state.get("sent", 0),
        "refused": sum(refused.values()),
        "refused_by_cause": [{"cause": c, "count": n} for c, n in sorted(refused.items())],
        "failed": by_state.get("failed", 0),
        "delivered": delivered, "delivery_failed": undelivered,
        "contacted": contacted, "holdout": holdout, "lift_points": lift,
        "runs": [{"id": r.id, "day": r.day, "kind": r.kind, "started_at": r.started_at,
                  "targeted": r.targeted, "held_out": r.held_out, "sent": sent,
                  "refused": refused_n, "pending": pending}
                 for r, sent, refused_n, pending in runs],
    }
