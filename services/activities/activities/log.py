"""The contact log: logging an activity (with the promise or callback its result asks
for) and correcting one, both as appends to the account's hash chain.

Everything a request needs is validated before anything is written, and everything it
writes (entry, chain head, promise, agenda item, rollup increments, outbox events)
goes in the caller's one transaction: a refusal leaves nothing behind. An outbound call
is a contact, so the one contact policy judges it (at the time it started) like any other.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from recaudo_common import contact_policy
from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity

from . import agenda, catalogue, chain, compliance, limits, productivity, promises
from .models import Activity, AgendaItem, Promise, ResultCode
from .contracts import ActivityOut

#: a callback may be set a little in the past (the form was open a while), not more
CALLBACK_SLACK = timedelta(minutes=10)
CALLBACK_HORIZON = timedelta(days=366)
#: an activity may be logged up to this long after it started (the agent logs it later)
LATE_LOGGING = timedelta(days=31)
CLOCK_SKEW = timedelta(minutes=5)
#: the field a contact-policy refusal names, by its cause
POLICY_FIELDS = {contact_policy.DO_NOT_CONTACT: "phone", contact_policy.OUTSIDE_HOURS: "started_at",
                 contact_policy.INCONVENIENT: "started_at", contact_policy.CALLER_ID: "caller_id"}

logger = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(timezone.utc)


def find_by_key(session: Session, agent_id: int, key: str | None) -> Activity | None:
    if not key:
        return None
    return session.execute(select(Activity).where(Activity.logged_by == agent_id,
                                                  Activity.idempotency_key == key)
                           ).scalar_one_or_none()


def resolve_code(session: Session, institution_id: int, data: dict) -> ResultCode | None:
    """The entry's result code, which must be an active one of the account's institution."""
    if data.get("result_code_id") is None and data.get("result_code") is None:
        return None
    if data.get("result_code_id") is not None:
        field = "result_code_id"
        code = session.get(ResultCode, data["result_code_id"])
    else:
        field = "result_code"
        code = session.execute(select(ResultCode).where(
            ResultCode.institution_id == institution_id,
            ResultCode.code == data["result_code"].upper())).scalar_one_or_none()
    if code is None or code.institution_id != institution_id:
        raise InvalidInput("Código de resultado inválido",
                           {field: ["No existe en el catálogo de la institución de la cuenta"]})
    if not code.active:
        raise InvalidInput("Código de resultado inactivo", {field: ["El código está inactivo"]})
    return code


def judged_by_policy(data: dict) -> bool:
    """Whether the contact policy judges this entry: an outbound call (its hour always, its
    number when one is named). Inbound calls and notes are no contact we made; email and
    fax are judged where they are sent (messaging), before their entry is logged."""
    return data["kind"] == "call" and data["direction"] == "outbound"


def needs_contacts(data: dict) -> bool:
    """Whether logging ``data`` needs the account's contact view: a call the policy judges,
    or a promise (the policy in force may want the agreement sent in writing)."""
    return judged_by_policy(data) or bool(data.get("promise")) or bool(data.get("settlement"))


def caller_id(data: dict, settings) -> str | None:
    """The number an outbound call went out from: the logging's, else the institution's."""
    number = contact_policy.phone_digits(data.get("caller_id") or settings.outbound_number)
    return number or None


def _check_policy(session: Session, db, identity: Identity, contacts: dict | None,
                  data: dict) -> str | None:
    """The engine's verdict on the call when it started (it may be logged minutes later),
    under the jurisdiction's policy then in force: Conflict naming the field to blame and
    the rule, unless an administrator overrides; answers the override's record (None when
    none was needed). A refusal is kept in the compliance log (its own transaction: the
    refused request writes nothing else), an override with the entry."""
    if not judged_by_policy(data):
        return None
    verdict = compliance.judge(session, contacts, "call", data["phone"], at=data["started_at"])
    # (``contacts`` carries the call's ``caller_id``: see log_activity)
    field = POLICY_FIELDS.get(verdict.cause, "phone")
    if not verdict.allowed and data.get("override") is None:
        with db.session() as own:
            compliance.record(own, identity, contacts, "call", data["phone"], verdict)
    overridden = contact_policy.enforce(verdict, field, data.get("override"), identity,
                                        "activities.manage")
    if overridden:
        compliance.record(session, identity, contacts, "call", data["phone"], verdict,
                          data["override"]["justification"])
    return overridden


def _settlement(session: Session, account: dict, data: dict, code: ResultCode | None,
                today: date) -> tuple[dict, str | None, list[dict], dict]:
    """The settlement an agent offers on ``account`` (``limits.settlement``, as in the
    portal): (terms, approver, reasons, the promise of its lump sum)."""
    if data.get("promise"):
        raise InvalidInput("Promesa y liquidación", {"settlement": [
            "Una liquidación ya es la promesa: no indique otra"]})
    if not (code is not None and code.needs_promise):
        raise InvalidInput("Liquidación no esperada", {"settlement": [
            "El resultado elegido no lleva promesa de pago"]})
    asked = data["settlement"]
    terms, approver, reasons = limits.settlement(
        limits.limits_of(session, account["institution_id"]), account, asked["discount_pct"],
        today, "settlement.discount_pct", asked.get("pay_by"))
    return terms, approver, reasons, {"amount": Decimal(terms["amount"]),
                                      "due_date": date.fromisoformat(terms["pay_by"])}


def _check_times(data: dict) -> None:
    current = now()
    if data["started_at"] > current + CLOCK_SKEW:
        raise InvalidInput("Fecha futura", {"started_at": ["No puede estar en el futuro"]})
    if data["started_at"] < current - LATE_LOGGING:
        raise InvalidInput("Demasiado antigua",
                           {"started_at": ["Sólo se registran gestiones del último mes"]})


def _entry(identity: Identity, account: dict, data: dict, code: ResultCode | None,
           details: dict, **extra) -> dict:
    return {
        "institution_id": account["institution_id"], "account_id": account["id"],
        "debtor_id": account["debtor_id"], "agent_id": identity.user_id,
        "logged_by": identity.user_id, "queue_id": data.get("queue_id"),
        "kind": data["kind"], "direction": data["direction"], "phone": data.get("phone"),
        "email": data.get("email"), "address": data.get("address"),
        "started_at": data["started_at"], "ended_at": data.get("ended_at"),
        "result_code_id": code.id if code else None, "result_code": code.code if code else None,
        "contact_made": bool(code and code.contact_made), "description": data["description"],
        "details": details, "corrects_id": None, "idempotency_key": data.get("idempotency_key"),
        # microseconds, as PostgreSQL keeps them: the hash is recomputed from the stored value
        "recorded_at": now(),
        **extra,
    }


def log_activity(session: Session, db, identity: Identity, account: dict, data: dict,
                 contacts: dict | None = None) -> dict:
    """Append a new entry for ``account`` (the portfolio's view of it, already in scope);
    ``contacts`` is the portfolio's contact view of it when ``judged_by_policy(data)``.
    The caller has found no entry of its own under the idempotency key (``find_by_key``)."""
    institution_id = account["institution_id"]
    settings = catalogue.settings_of(session, institution_id)
    code = resolve_code(session, institution_id, data)
    _check_times(data)
    today = catalogue.today_in(settings.time_zone)
    terms = data.get("promise")
    settlement = approver = None
    outside = []
    if data.get("settlement"):
        # a settlement: its lump sum is the promise, judged by the account's discount band
        settlement, approver, outside, terms = _settlement(session, account, data, code, today)
    if code is not None and code.needs_promise and not terms:
        raise InvalidInput("Falta la promesa", {"promise": ["El resultado requiere una promesa de pago"]})
    if terms and not (code is not None and code.needs_promise):
        raise InvalidInput("Promesa no esperada",
                           {"promise": ["El resultado elegido no lleva promesa de pago"]})
    plan = promises.plan_of(terms, today) if terms else None
    # outside the institution's limits: logged, and the promise waits for a supervisor
    if plan and settlement is None:
        outside = limits.plan_reasons(limits.limits_of(session, institution_id), plan, today)
        approver = "supervisor"
    callback_at = data.get("callback_at")
    if code is not None and code.schedules_callback and callback_at is None:
        raise InvalidInput("Falta la fecha de la llamada",
                           {"callback_at": ["El resultado requiere programar una llamada"]})
    if callback_at is not None and not (now() - CALLBACK_SLACK <= callback_at
                                        <= now() + CALLBACK_HORIZON):
        raise InvalidInput("Fecha de llamada inválida",
                           {"callback_at": ["Debe ser futura y dentro del próximo año"]})
    outbound_call = judged_by_policy(data)
    number = caller_id(data, settings) if outbound_call else None
    if contacts is not None:
        contacts = {**contacts, "caller_id": number}
    overridden = _check_policy(session, db, identity, contacts, data)

    details = {}
    if number:   # the outbound number used is kept with the call
        details["caller_id"] = number
    if data.get("campaign_id") is not None:
        details["campaign_id"] = data["campaign_id"]
    if data.get("portal_link_id") is not None:
        details.update(portal="link_sent", portal_link_id=data["portal_link_id"])
    if overridden:
        details["compliance_override"] = overridden
    if plan:
        details["promise"] = promises.plan_details(plan)
        if outside:
            details["promise"]["needs_approval"] = True
    if settlement:   # kept, it forgives the rest of the debt (promises.apply_payment)
        details["settlement"] = settlement
    if callback_at is not None:
        details["callback_at"] = callback_at.astimezone(timezone.utc).isoformat()

    head = chain.lock_head(session, account["id"], institution_id)
    # the caller looked the key up before; a retry that raced this one in since fails the
    # insert on the key's unique constraint (IntegrityError), and the caller answers its entry
    activity = chain.append(session, head, _entry(identity, account, data, code, details))
    if overridden:
        logger.warning("activity %s on account %s logged outside the contact policy by user "
                       "%s: %s", activity.id, activity.account_id, identity.user_id, overridden)
    day = catalogue.local_day(activity.started_at, settings.time_zone)
    deltas = productivity.entry_deltas(activity.kind, activity.contact_made)
    if plan and not outside:   # the promise counts on the entry's row: one upsert for both
        deltas.update(promises.made_deltas(plan))
    productivity.bump(session, day, activity.agent_id, institution_id, activity.queue_id,
                      **deltas)
    promise = promises.make(session, db, activity, plan, day) if plan and not outside else None
    approval = limits.request(session, account, "settlement" if settlement else "promise",
                              dict(promises.plan_details(plan), **(
                                  {"settlement": settlement} if settlement else {})),
                              outside, approver, "agent", identity.user_id, activity.id) \
        if outside else None
    item = None
    if callback_at is not None:
        item = agenda.create(session, db, AgendaItem(
            institution_id=institution_id, account_id=activity.account_id,
            debtor_id=activity.debtor_id, kind="visit" if activity.kind == "visit" else "callback",
            due_at=callback_at, agent_id=identity.user_id, note=data.get("callback_note", ""),
            activity_id=activity.id, created_by=identity.user_id))
    _announce(db, session, activity, code, callback_at, promise["id"] if promise else None)
    if promise is not None and contacts is not None:
        _agreement_in_writing(session, db, contacts, activity, promise)
    if outbound_call:   # the frequency rule may hold the debt now
        session.flush()
        compliance.announce_hold(session, db, contacts)
    # described from what was just written: nothing to read back
    out = ActivityOut().dump(activity)
    out["promise"] = promise
    out["approval"] = limits.describe_approval(approval) if approval else None
    out["agenda_item_id"] = item.id if item else None
    return out


def _agreement_in_writing(session: Session, db, contacts: dict, activity: Activity,
                          promise: dict) -> None:
    """Under a policy whose agreements go to the debtor in writing, announce the one just
    made (``agreement_made``), in the debtor's preferred language: messaging sends it, judged
    like every contact, and logs it."""
    policy = compliance.policy_in_force(session, contacts["institution"].get("jurisdiction"),
                                        activity.started_at)
    if not contact_policy.requires_written_agreement(policy):
        return
    db.emit(session, "agreement_made", {
        "promise_id": promise["id"], "activity_id": activity.id,
        "account_id": activity.account_id, "debtor_id": activity.debtor_id,
        "institution_id": activity.institution_id, "agent_id": activity.agent_id,
        "amount": Decimal(str(promise["amount"])),
        "instalments": [{"number": i["number"], "due_date": date.fromisoformat(str(i["due_date"])),
                         "amount": Decimal(str(i["amount"]))} for i in promise["instalments"]],
        "policy_version": f"{policy['jurisdiction']}-{policy['version']}",
        "language": compliance.preferences_of(session, activity.debtor_id).get("language")
        or "es"})


def correct_activity(session: Session, db, identity: Identity, original_id: int,
                     data: dict) -> dict:
    """Append an entry that replaces ``original_id``'s content; the original stays."""
    original = session.get(Activity, original_id)
    if original is None or not identity.may_access_institution(original.institution_id):
        raise NotFound("Gestión no encontrada")
    if original.agent_id != identity.user_id and original.agent_id not in identity.team \
            and not identity.has("activities.manage"):
        raise PermissionDenied("Sólo quien la registró o su supervisor la corrigen")
    settings = catalogue.settings_of(session, original.institution_id)
    code = resolve_code(session, original.institution_id, data)
    _check_times(data)
    head = chain.lock_head(session, original.account_id, original.institution_id)
    again = find_by_key(session, identity.user_id, data.get("idempotency_key"))
    if again is not None:
        return describe(session, again)
    if session.execute(select(Activity.id).where(Activity.corrects_id == original.id)).first():
        raise Conflict("La gestión ya fue corregida; corrija la corrección",
                       {"activity_id": ["Ya tiene una corrección"]})
    account = {"id": original.account_id, "institution_id": original.institution_id,
               "debtor_id": original.debtor_id}
    entry = _entry(identity, account, {**data, "queue_id": original.queue_id}, code,
                   {"corrects": {"seq": original.seq, "hash": original.hash}},
                   corrects_id=original.id, agent_id=original.agent_id)
    activity = chain.append(session, head, entry)
    # the rollup counts what the log says now: the original out, the correction in
    old_day = catalogue.local_day(original.started_at, settings.time_zone)
    productivity.bump(session, old_day, original.agent_id, original.institution_id,
                      original.queue_id,
                      **productivity.entry_deltas(original.kind, original.contact_made, -1))
    new_day = catalogue.local_day(activity.started_at, settings.time_zone)
    productivity.bump(session, new_day, activity.agent_id, activity.institution_id,
                      activity.queue_id,
                      **productivity.entry_deltas(activity.kind, activity.contact_made))
    _announce(db, session, activity, code, None)
    return describe(session, activity)


def _announce(db, session, activity: Activity, code: ResultCode | None, callback_at,
              promise_id: int | None = None) -> None:
    db.emit(session, "activity_logged", {
        "activity_id": activity.id, "account_id": activity.account_id,
        "institution_id": activity.institution_id, "debtor_id": activity.debtor_id,
        "agent_id": activity.agent_id, "queue_id": activity.queue_id, "kind": activity.kind,
        "direction": activity.direction, "started_at": activity.started_at,
        "result_code": activity.result_code, "contact_made": activity.contact_made,
        "needs_promise": bool(code and code.needs_promise),
        "invalidates_phone": bool(code and code.invalidates_phone),
        "schedules_callback": bool(code and code.schedules_callback),
        "phone": activity.phone, "callback_at": callback_at, "corrects_id": activity.corrects_id,
        "promise_id": promise_id})


def describe(session: Session, activity: Activity, promise: Promise | None = None) -> dict:
    out = ActivityOut().dump(activity)
    if promise is None:
        promise = session.execute(select(Promise).where(Promise.activity_id == activity.id)
                                  ).scalar_one_or_none()
    out["promise"] = promises.describe(session, promise) if promise else None
    out["agenda_item_id"] = session.execute(select(AgendaItem.id).where(
        AgendaItem.activity_id == activity.id).limit(1)).scalar()
    return out


def history(session: Session, account_id: int, page: int, per_page: int) -> dict:
    """The account's entries, newest first, each with the entry that corrects it (if any)."""
    total = session.execute(select(func.count()).select_from(Activity)
                            .where(Activity.account_id == account_id)).scalar_one()
    fix = aliased(Activity)
    rows = session.execute(
        select(Activity, ResultCode.label, fix.id)
        .outerjoin(ResultCode, ResultCode.id == Activity.result_code_id)
        .outerjoin(fix, fix.corrects_id == Activity.id)
        .where(Activity.account_id == account_id)
        .order_by(Activity.started_at.desc(), Activity.id.desc())
        .offset((page - 1) * per_page).limit(per_page)).all()
    items = []
    for activity, label, corrected_by in rows:
        item = ActivityOut().dump(activity)
        item["result_label"] = label
        item["corrected_by_id"] = corrected_by
        items.append(item)
    return {"items": items, "total": total, "page": page, "per_page": per_page,
            "pages": (total + per_page - 1) // per_page}
