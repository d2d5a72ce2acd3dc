"""Each institution's limits on promises, plans and settlements, as data, and the queue
of what falls outside them.

A promise inside its institution's limits is made at once; one outside (too many
instalments, a first payment too small, a plan too long) is logged with its entry and
waits in ``approvals`` for a supervisor, whoever asked for it (an agent in the activity
form, the debtor in the portal). A settlement's discount is judged by the band of the
account's stage and days past due: each threshold names who must approve up to it, and
above the last one it is refused. Until an administrator writes them, the limits are
permissive (36 instalments, three years, no minimum) so nothing changes for anyone.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity

from . import productivity, promises
from .contracts import ApprovalOut, LimitsOut
from .models import Activity, Approval, PlanLimits

#: who decides above a threshold, by the permission they hold
APPROVER_PERMISSION = {"supervisor": "promises.approve", "administrator": "activities.manage"}
HUNDRED = Decimal("100")


def limits_of(session: Session, institution_id: int) -> PlanLimits:
    """The institution's limits, made with the permissive defaults the first time."""
    limits = session.get(PlanLimits, institution_id)
    if limits is None:
        session.execute(insert(PlanLimits).values(institution_id=institution_id)
                        .on_conflict_do_nothing(index_elements=[PlanLimits.institution_id]))
        limits = session.get(PlanLimits, institution_id)
    return limits


def describe(limits: PlanLimits) -> dict:
    return LimitsOut().dump(limits)


def save(session: Session, identity: Identity, institution_id: int, data: dict) -> dict:
    limits = limits_of(session, institution_id)
    for field, value in data.items():
        if field == "discount_bands":
            value = [_band_json(b) for b in value]
        setattr(limits, field, value)
    limits.updated_by = identity.user_id
    limits.updated_at = func.now()
    session.flush()
    session.refresh(limits)
    return describe(limits)


def _band_json(band: dict) -> dict:
    return {"stage": band.get("stage"), "dpd_from": band["dpd_from"], "dpd_to": band.get("dpd_to"),
            "thresholds": [{"up_to_pct": str(t["up_to_pct"]), "approver": t.get("approver")}
                           for t in band["thresholds"]]}


# --- judging terms --------------------------------------------------------------------------

def plan_reasons(limits: PlanLimits, plan: list[dict], today: date) -> list[dict]:
    """Why ``plan`` (promises.plan_of) is outside ``limits``: [{field, message}], empty
    when it is inside. Field names are those of the promise's input."""
    reasons = []
    total = sum(p["amount"] for p in plan)
    first = plan[0]["amount"]
    several = len(plan) > 1
    if len(plan) > limits.max_instalments:
        reasons.append({"field": "promise.instalments",
                        "message": f"Más de {limits.max_instalments} parcialidades"})
    first_field = "promise.instalments.0.amount" if several else "promise.amount"
    if first < limits.min_first_payment:
        reasons.append({"field": first_field,
                        "message": f"El primer pago mínimo es {limits.min_first_payment}"})
    elif several and first * HUNDRED < total * limits.min_first_payment_pct:
        reasons.append({"field": first_field,
                        "message": f"El primer pago debe ser al menos el "
                                   f"{limits.min_first_payment_pct}% del total"})
    days = (plan[-1]["due_date"] - today).days
    if days > limits.max_plan_days:
        reasons.append({"field": "promise.due_date" if not several else "promise.instalments",
                        "message": f"El plan dura más de {limits.max_plan_days} días"})
    return reasons


def band_for(limits: PlanLimits, stage: str | None, days_past_due: int) -> dict | None:
    """The first band matching the account's stage (or any) and days past due."""
    for band in limits.discount_bands or []:
        if band.get("stage") not in (None, stage):
            continue
        if days_past_due < band.get("dpd_from", 0):
            continue
        if band.get("dpd_to") is not None and days_past_due > band["dpd_to"]:
            continue
        return band
    return None


def discount_approver(limits: PlanLimits, stage: str | None, days_past_due: int,
                      pct: Decimal) -> tuple[bool, str | None]:
    """(allowed, approver) for a discount of ``pct`` percent on such an account: allowed
    with no approver is granted at once; not allowed is refused (above every threshold,
    or no band for the account and any discount at all)."""
    if pct <= 0:
        return True, None
    band = band_for(limits, stage, days_past_due)
    if band is None:
        return False, None
    for threshold in band["thresholds"]:
        if pct <= Decimal(threshold["up_to_pct"]):
            return True, threshold.get("approver")
    return False, None


def free_pct(band: dict | None) -> Decimal:
    """The highest discount ``band`` grants with nobody's approval (0 when none)."""
    return max((Decimal(t["up_to_pct"]) for t in (band or {}).get("thresholds", [])
                if not t.get("approver")), default=Decimal("0"))


def top_pct(band: dict | None) -> Decimal:
    """The highest discount ``band`` allows at all, with whatever approval."""
    return max((Decimal(t["up_to_pct"]) for t in (band or {}).get("thresholds", [])),
               default=Decimal("0"))


def applying(limits: PlanLimits, account: dict) -> dict:
    """The limits as they apply to ``account`` (what the activity form shows): the
    institution's, with the discount band of its stage and days past due (None: no
    discount at all), the discount granted at once and the highest one with approval."""
    band = band_for(limits, account.get("stage"), account.get("days_past_due") or 0)
    return {**describe(limits), "stage": account.get("stage"),
            "days_past_due": account.get("days_past_due") or 0, "band": band,
            "free_pct": str(free_pct(band)), "top_pct": str(top_pct(band))}


def plan_verdict(limits: PlanLimits, plan: list[dict], today: date) -> dict:
    """What logging ``plan`` would do, judged by ``plan_reasons`` as the logging does: made
    at once (``within``), or waiting for the approver it names, and why."""
    reasons = plan_reasons(limits, plan, today)
    return {"within": not reasons, "reasons": reasons,
            "approver": "supervisor" if reasons else None}


#: the approver levels as a reason names them
APPROVER_WORDS = {"supervisor": "un supervisor", "administrator": "un administrador"}
CENT = Decimal("0.01")


def settlement_at(account: dict, pct: Decimal, pay_by: date) -> dict:
    """A settlement of ``pct`` percent off the account's balance: its lump sum, by ``pay_by``."""
    balance = Decimal(str(account.get("balance") or 0))
    amount = (balance * (100 - pct) / 100).quantize(CENT, ROUND_HALF_UP)
    return {"account_id": account["id"], "discount_pct": str(pct.quantize(CENT)),
            "balance": str(balance), "amount": str(amount), "pay_by": pay_by.isoformat()}


def settlement(limits: PlanLimits, account: dict, pct: Decimal, today: date, field: str,
               pay_by: date | None = None) -> tuple[dict, str | None, list[dict]]:
    """A settlement of ``pct`` percent on ``account``, whoever offers it (the debtor in the
    portal, an agent in the activity form), judged by its band (``discount_approver``):
    (terms, approver, reasons) - no approver: granted at once; else it waits for that
    level, with the reason. Refused (InvalidInput naming ``field``) above the band's last
    threshold, on an account with nothing owed, or paid later than the offer's expiry."""
    balance = Decimal(str(account.get("balance") or 0))
    if balance <= 0:
        raise Conflict("La cuenta no tiene saldo que liquidar", _at(field, ["Sin saldo"]))
    allowed, approver = discount_approver(limits, account.get("stage"),
                                          account.get("days_past_due") or 0, pct)
    if not allowed:
        top = top_pct(band_for(limits, account.get("stage"), account.get("days_past_due") or 0))
        raise InvalidInput("Descuento no permitido", _at(field, [
            f"El descuento máximo que puede pedirse es {top}%" if top > 0
            else "La cuenta no admite descuento"]))
    latest = today + timedelta(days=limits.offer_expiry_days)
    if pay_by is not None and not today <= pay_by <= latest:
        raise InvalidInput("Fecha de pago inválida", _at(
            field.rpartition(".")[0] + ".pay_by" if "." in field else "pay_by",
            [f"Entre hoy y el {latest.isoformat()} (la vigencia de la oferta)"]))
    terms = settlement_at(account, pct, pay_by or latest)
    reasons = [{"field": field, "message": f"Un descuento de {terms['discount_pct']}% requiere "
                                           f"la aprobación de {APPROVER_WORDS[approver]}"}] \
        if approver else []
    return terms, approver, reasons


def _at(field: str, problems: list[str]) -> dict:
    """Problems of a dotted ``field`` nested as the input's schema names them."""
    head, _, rest = field.partition(".")
    return {head: _at(rest, problems) if rest else problems}


# --- the approval queue ---------------------------------------------------------------------

def request(session: Session, account: dict, kind: str, terms: dict, reasons: list[dict],
            approver: str, channel: str, requested_by: int,
            activity_id: int | None = None) -> Approval:
    approval = Approval(institution_id=account["institution_id"], account_id=account["id"],
                        debtor_id=account["debtor_id"], kind=kind, terms=terms, reasons=reasons,
                        approver=approver, channel=channel, requested_by=requested_by,
                        activity_id=activity_id, state="pending", note="")
    session.add(approval)
    session.flush()
    return approval


def describe_approval(approval: Approval) -> dict:
    return ApprovalOut().dump(approval)


def may_list(identity: Identity) -> bool:
    return bool(decidable_levels(identity))


def decidable_levels(identity: Identity) -> list[str]:
    """The approver levels whose requests ``identity`` may decide."""
    return [level for level, permission in APPROVER_PERMISSION.items()
            if identity.has(permission)]


def listing(session: Session, identity: Identity, query: dict) -> dict:
    """The requests the caller may decide: a supervisor does not see those waiting for an
    administrator (approving one could only be refused)."""
    conditions = [Approval.state == query["state"],
                  Approval.approver.in_(decidable_levels(identity))]
    if query.get("institution_id") is not None:
        identity.require_institution(query["institution_id"])
        conditions.append(Approval.institution_id == query["institution_id"])
    elif not identity.all_institutions:
        conditions.append(Approval.institution_id.in_(list(identity.institutions) or [-1]))
    total = session.execute(select(func.count()).select_from(Approval)
                            .where(*conditions)).scalar_one()
    page, per_page = query["page"], query["per_page"]
    rows = session.execute(select(Approval).where(*conditions)
                           .order_by(Approval.created_at, Approval.id)
                           .offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return {"items": [describe_approval(a) for a in rows], "total": total, "page": page,
            "per_page": per_page, "pages": (total + per_page - 1) // per_page}


def for_account(session: Session, account_id: int) -> list[dict]:
    rows = session.execute(select(Approval).where(Approval.account_id == account_id)
                           .order_by(Approval.id.desc())).scalars().all()
    return [describe_approval(a) for a in rows]


def terms_plan(terms: dict) -> list[dict]:
    """The plan an approval's terms hold (promises.plan_details), as plan_of gives it."""
    return [{"number": i["number"], "due_date": date.fromisoformat(i["due_date"]),
             "amount": Decimal(i["amount"])} for i in terms["instalments"]]


def decide(session: Session, db, identity: Identity, approval_id: int, data: dict,
           today: date) -> dict:
    """Approve (the promise is made now, on ``today`` of the institution) or reject, once,
    by who holds the approver's permission in the approval's institution."""
    approval = session.execute(select(Approval).where(Approval.id == approval_id)
                               .with_for_update()).scalar_one_or_none()
    if approval is None or not identity.may_access_institution(approval.institution_id):
        raise NotFound("Solicitud de aprobación no encontrada")
    permission = APPROVER_PERMISSION[approval.approver]
    if not identity.has(permission):
        raise PermissionDenied(f"Falta el permiso {permission}", {"permission": [permission]})
    if approval.state != "pending":
        raise Conflict("La solicitud ya fue decidida", {"approval_id": ["Ya fue decidida"]})
    if data["decision"] == "approve":   # a settlement's promise is its lump sum
        plan = terms_plan(approval.terms)
        if plan[0]["due_date"] < today:
            raise Conflict("La primera fecha del plan ya pasó: recházelo",
                           {"approval_id": ["La primera fecha del plan ya pasó"]})
        activity = session.get(Activity, approval.activity_id)
        ((promise, _),) = promises.make_many(session, db, [(activity, plan, today)],
                                             with_entry=False)
        productivity.bump(session, today, activity.agent_id, activity.institution_id,
                          activity.queue_id, **promises.made_deltas(plan))
        approval.promise_id = promise.id
    approval.state = "approved" if data["decision"] == "approve" else "rejected"
    approval.decided_by = identity.user_id
    approval.decided_at = datetime.now(timezone.utc)
    approval.note = data["note"]
    session.flush()
    return describe_approval(approval)


def institution_of(session: Session, approval_id: int) -> int | None:
    return session.execute(select(Approval.institution_id)
                           .where(Approval.id == approval_id)).scalar()
