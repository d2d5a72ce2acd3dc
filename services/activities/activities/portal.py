"""What a debtor sees and does in the portal, on their own accounts (the portfolio's
``portal_account``/``portal_overview`` answer only those): their promises and their
state, open disputes, the settlement offer the institution's limits allow, and the
actions - a promise or plan (made at once inside the limits, else waiting for a
supervisor), accepting the settlement offer, a dispute, their contact preferences, a
callback in their collector's agenda.

Every access and action is an entry of the account's contact log (kind ``portal``,
agent 0: nobody but the debtor), hash-chained like any other, so the agent sees it all
in the history. Portal entries announce no ``activity_logged`` (they are no contact the
agency made); the promises, disputes and callbacks they make announce their own events.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from recaudo_common.errors import Conflict, InvalidInput

from . import agenda, catalogue, chain, compliance, disputes, limits, productivity, promises
from .contracts import PORTAL_KIND
from .models import Activity, AgendaItem, Approval, Promise
#: the "agent" of what the debtor did alone
NOBODY = 0
CALLBACK_HORIZON = timedelta(days=30)


def now() -> datetime:
    return datetime.now(timezone.utc)


def record(session: Session, account: dict, action: str, description: str,
           **details) -> Activity:
    """Append the portal's entry for ``action`` on ``account`` to its chain."""
    head = chain.lock_head(session, account["id"], account["institution_id"])
    return chain.append(session, head, {
        "institution_id": account["institution_id"], "account_id": account["id"],
        "debtor_id": account["debtor_id"], "agent_id": NOBODY, "logged_by": NOBODY,
        "queue_id": None, "kind": PORTAL_KIND, "direction": "inbound", "phone": None,
        "email": None, "address": None, "started_at": now(), "ended_at": None,
        "result_code_id": None, "result_code": None, "contact_made": False,
        "description": description, "details": {"portal": action, **details},
        "corrects_id": None, "idempotency_key": None, "recorded_at": now()})


# --- what they see ------------------------------------------------------------------------

def offer_of(session: Session, account: dict, today) -> dict | None:
    """The settlement the institution grants at once on this account: the highest discount
    its band allows without approval, on the balance, payable by the offer's expiry; with
    the highest discount the debtor may ask for (``max_pct``, granted by its approver)."""
    if Decimal(str(account.get("balance") or 0)) <= 0:
        return None
    rules = limits.limits_of(session, account["institution_id"])
    band = limits.band_for(rules, account.get("stage"), account.get("days_past_due") or 0)
    pct = limits.free_pct(band)
    if pct <= 0:
        return None
    return {**limits.settlement_at(account, pct, today + timedelta(days=rules.offer_expiry_days)),
            "max_pct": str(max(pct, limits.top_pct(band)))}


#: how long a refused request stays on the debtor's page (they are told, then it goes)
REFUSED_SHOWN = timedelta(days=30)


def view(session: Session, accounts: list[dict], debtor_id: int) -> dict:
    """Per account: promises with their state, open disputes, pending approvals and the
    settlement offer; and the debtor's contact preferences."""
    out = []
    for account in accounts:
        settings = catalogue.settings_of(session, account["institution_id"])
        today = catalogue.today_in(settings.time_zone)
        pending = session.execute(select(Approval).where(
            Approval.account_id == account["id"],
            (Approval.state == "pending") | ((Approval.state == "rejected")
                                             & (Approval.decided_at > now() - REFUSED_SHOWN)))
            .order_by(Approval.id)).scalars().all()
        out.append({"account_id": account["id"],
                    "promises": promises.for_account(session, account["id"]),
                    "disputes": [d for d in disputes.for_account(session, account["id"])
                                 if d["state"] == "open"],
                    "approvals": [limits.describe_approval(a) for a in pending],
                    "offer": None if _settling(session, account["id"])
                    or _settlement_asked(session, account["id"])
                    else offer_of(session, account, today)})
    return {"accounts": out, "preferences": compliance.preferences_of(session, debtor_id) or None}


# --- what they do -------------------------------------------------------------------------

def _today(session: Session, account: dict):
    return catalogue.today_in(catalogue.settings_of(session, account["institution_id"]).time_zone)


def promise(session: Session, db, account: dict, terms: dict, settlement: dict | None = None,
            approver: str | None = None, reasons: list[dict] | None = None) -> dict:
    """A promise or plan made by the debtor: at once inside the limits, else an approval
    for a supervisor. A settlement's promise is the offer's one payment, made at once
    unless its discount needs ``approver`` (for ``reasons``)."""
    today = _today(session, account)
    plan = promises.plan_of(terms, today)
    if settlement is None:
        reasons = limits.plan_reasons(limits.limits_of(session, account["institution_id"]),
                                      plan, today)
        approver = "supervisor" if reasons else None
    details = {"promise": promises.plan_details(plan)}
    if settlement:
        details["settlement"] = settlement
    if reasons:
        details["promise"]["needs_approval"] = True
    described = ("Convenio de liquidación aceptado en el portal" if settlement
                 else "Promesa de pago en el portal") + \
        (" (requiere aprobación)" if reasons else "")
    activity = record(session, account, "settlement" if settlement else "promise", described,
                      **details)
    if reasons:
        asked = promises.plan_details(plan)
        if settlement:
            asked["settlement"] = settlement
        approval = limits.request(session, account, "settlement" if settlement else "promise",
                                  asked, reasons, approver, "portal", NOBODY, activity.id)
        return {"promise": None, "approval": limits.describe_approval(approval),
                "activity_id": activity.id}
    ((made, instalments),) = promises.make_many(session, db, [(activity, plan, today)],
                                                with_entry=False)
    productivity.bump(session, today, NOBODY, account["institution_id"], None,
                      **promises.made_deltas(plan))
    return {"promise": promises.describe(session, made, instalments), "approval": None,
            "activity_id": activity.id}


def _settling(session: Session, account_id: int) -> bool:
    """Whether the account's settlement offer was accepted and is pending payment."""
    return session.execute(select(Promise.id).join(Activity, Activity.id == Promise.activity_id)
                           .where(Promise.account_id == account_id, Promise.state == "pending",
                                  Activity.details.has_key("settlement"))).first() is not None


def _settlement_asked(session: Session, account_id: int) -> bool:
    """Whether a settlement waits for its approver on the account."""
    return session.execute(select(Approval.id).where(
        Approval.account_id == account_id, Approval.kind == "settlement",
        Approval.state == "pending")).first() is not None


def accept_offer(session: Session, db, account: dict, pct: Decimal | None = None) -> dict:
    """The offer as it stands now (never the amounts a client sends) becomes a promise; or,
    with ``pct``, a settlement at that discount, judged by the account's band
    (``limits.settlement``): granted at once, waiting for the approver it names
    (effective only when approved), or refused above the band's last threshold."""
    today = _today(session, account)
    offer = offer_of(session, account, today)
    if offer is None:
        raise Conflict("La cuenta no tiene oferta de liquidación",
                       {"account_id": ["Sin oferta vigente"]})
    if _settling(session, account["id"]) or _settlement_asked(session, account["id"]):
        raise Conflict("La oferta ya fue aceptada", {"account_id": ["Ya aceptó la oferta"]})
    approver, reasons = None, []
    if pct is not None:
        rules = limits.limits_of(session, account["institution_id"])
        terms, approver, reasons = limits.settlement(rules, account, pct, today, "discount_pct")
        offer = {**terms, "max_pct": offer["max_pct"]}
    terms = {"amount": Decimal(offer["amount"]), "due_date": date.fromisoformat(offer["pay_by"])}
    settlement = {k: v for k, v in offer.items() if k != "max_pct"}
    return {**promise(session, db, account, terms, settlement=settlement, approver=approver,
                      reasons=reasons),
            "offer": offer}


def dispute(session: Session, db, identity, account: dict, data: dict, file_evidence=None
            ) -> dict:
    """The debtor's dispute; with ``document_version_id``, ``file_evidence(version_id,
    dispute_id)`` (the documents service) files that upload of theirs with it and answers
    it, or refuses, and nothing is opened."""
    owner = account.get("assigned_agent_id") or account.get("lawyer_id") or NOBODY
    opened = disputes.open_dispute(session, db, identity, account,
                                   {"reason": data["reason"], "evidence": data["evidence"],
                                    "owner_id": owner})
    if data.get("document_version_id") is not None:
        filed = file_evidence(data["document_version_id"], opened["id"])
        opened = disputes.attach_document(session, opened["id"], filed["version_id"],
                                          filed["name"])
    record(session, account, "dispute", f"Aclaración abierta en el portal: {data['reason']}",
           dispute_id=opened["id"], document_version_id=opened["document_version_id"])
    return opened


def callback(session: Session, db, account: dict, data: dict) -> dict:
    """A call the debtor asks for, in their collector's agenda (the team's when none)."""
    at = data["callback_at"]
    if not now() - timedelta(minutes=5) <= at <= now() + CALLBACK_HORIZON:
        raise InvalidInput("Fecha inválida",
                           {"callback_at": ["Debe ser futura y dentro de los próximos 30 días"]})
    agent = account.get("assigned_agent_id")
    if agent is None:
        raise Conflict("La cuenta no tiene gestor asignado",
                       {"account_id": ["Sin gestor asignado: llame usted a la institución"]})
    activity = record(session, account, "callback", "El deudor pide que le llamen",
                      callback_at=at.astimezone(timezone.utc).isoformat(), note=data["note"])
    item = agenda.create(session, db, AgendaItem(
        institution_id=account["institution_id"], account_id=account["id"],
        debtor_id=account["debtor_id"], kind="callback", due_at=at, agent_id=agent,
        note=("Pedido en el portal. " + data["note"])[:500], activity_id=activity.id,
        created_by=NOBODY))
    return {"agenda_item_id": item.id, "due_at": item.due_at, "activity_id": activity.id}


def preferences(session: Session, identity, debtor: dict, accounts: list[dict],
                data: dict) -> dict:
    """The debtor's word on being contacted, as the agents' form records it (issue 24's
    preferences): consent given or withdrawn per channel, the hours that do not suit them,
    their language, or cease-communication."""
    moment = now()
    write = {"consent": {channel: ({"given_at": moment, "withdrawn_at": None, "source": "portal"}
                                   if allowed else {"withdrawn_at": moment, "source": "portal"})
                         for channel, allowed in data["channels"].items()}}
    if data.get("contact_from"):
        spans = []
        if data["contact_from"] > "00:00":
            spans.append({"weekdays": None, "from_": "00:00", "until": data["contact_from"]})
        if data["contact_until"] < "23:59":
            spans.append({"weekdays": None, "from_": data["contact_until"], "until": "23:59"})
        write["inconvenient"] = spans
    if data.get("language"):
        write["language"] = data["language"]
    if data["opt_out"]:
        write["cease_at"] = moment
    saved = compliance.save_preferences(session, identity, debtor, write)
    for account in accounts:
        record(session, account, "preferences", "Preferencias de contacto cambiadas en el portal",
               channels={k: bool(v) for k, v in data["channels"].items()},
               contact_from=data.get("contact_from"), contact_until=data.get("contact_until"),
               language=data.get("language"), opt_out=data["opt_out"])
    return saved
