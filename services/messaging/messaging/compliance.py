"""Messaging under the contact policy: every email, SMS, fax and letter is judged by the
activities service (``check_contact``) under the jurisdiction's STORED policy in force -
the same versions, debt history and debtor preferences a logged call is judged on - and
a refusal or an override is written to the compliance log there, naming rule and version.

Also the written agreement (MX, ``contact_policy.WRITTEN_AGREEMENT``): an agreement
announced by activities (``agreement_made``) is sent to the debtor in writing, in their
preferred language (Spanish or English, carried by the event), by email
(the debtor's first address not marked do-not-contact, from the institution's sending
mailbox) or else by SMS (their first number, when the institution has a gateway), each
judged like any contact; the send is logged as an activity of the account. When neither
can go, a note on the account says why (the refusals are in the compliance log).
"""
from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from recaudo_common import contact_policy
from recaudo_common.errors import Conflict, InvalidInput

from . import contact_log, parsing, sms, templates
from .models import OutboundMessage, SmsMessage, SmsSettings

log = logging.getLogger(__name__)


def judged(activities, account_id: int, channel: str, to, override=None) -> dict:
    """The verdict (``allowed``, ``rule``, ``cause``, ``reason``, ``policy_version``,
    ``override``) on a send, from activities (which logs a refusal or an override)."""
    return activities.check_contact({"account_id": account_id, "channel": channel,
                                     "to": None if to is None else str(to)[:300],
                                     "override": override})


def enforce(verdict: dict, field: str = "compliance") -> str | None:
    """A refused send raises Conflict (409: the field, rule, reason and policy version);
    answers the override's record to keep with the message (None when none was needed)."""
    if verdict["allowed"]:
        return None
    if verdict.get("override"):
        return verdict["override"]
    refused = contact_policy.Verdict(False, verdict["reason"], verdict.get("cause", ""),
                                     verdict["rule"], verdict["policy_version"])
    raise Conflict(verdict["reason"], contact_policy.refusal_fields(refused, field))


# --- the agreement in writing -------------------------------------------------------------------

def _money(value) -> str:
    return f"${Decimal(str(value)):,.2f}"


def _day(value, language: str = "es") -> str:
    if not hasattr(value, "strftime"):
        return str(value)
    return value.strftime("%d/%m/%Y" if language == "es" else "%Y-%m-%d")


def agreement_text(agreement: dict, view: dict) -> tuple[str, str, str]:
    """(subject, email text, SMS text) of the agreement, in the debtor's preferred language
    (the event's ``language``: Spanish or English)."""
    language = agreement.get("language") or "es"
    institution = view["institution"].get("name", "")
    number = view["account"].get("account_number") or view["account"]["id"]
    plan = agreement["instalments"]
    lines = "\n".join(f"  {i['number']}. {_day(i['due_date'], language)}: {_money(i['amount'])}"
                      for i in plan)
    total, first = _money(agreement["amount"]), _day(plan[0]["due_date"], language)
    name = view["debtor"].get("name", "")
    if language == "en":
        text = (f"Dear {name}:\n\n"
                f"We confirm in writing the payment agreement for your account {number} with "
                f"{institution}: {len(plan)} payment(s) totalling {total}.\n\n"
                f"{lines}\n\n"
                "Please keep this message as a record. If anything differs from what was "
                "agreed, reply to this email.\n\n"
                f"{institution}")
        short = (f"{institution}: we confirm your payment agreement for account {number}: "
                 f"{total} in {len(plan)} payment(s), the first on {first}.")
        return "Confirmation of your payment agreement", text, short
    text = (f"Estimado(a) {name}:\n\n"
            f"Le confirmamos por escrito el acuerdo de pago de su cuenta {number} con "
            f"{institution}: {len(plan)} pago(s) por un total de {total}.\n\n"
            f"{lines}\n\n"
            "Conserve este mensaje como constancia. Si algo no coincide con lo acordado, "
            "responda a este correo.\n\n"
            f"{institution}")
    short = (f"{institution}: confirmamos su acuerdo de pago de la cuenta {number}: "
             f"{total} en {len(plan)} pago(s), el primero el {first}.")
    return "Confirmación de su acuerdo de pago", text, short


def _already_sent(session, key: str) -> bool:
    return bool(session.execute(select(OutboundMessage.id).where(
        OutboundMessage.idempotency_key == key).limit(1)).first() or session.execute(
        select(SmsMessage.id).where(SmsMessage.idempotency_key == key).limit(1)).first())


def send_agreement(svc, agreement: dict, event_id) -> str:
    """Send ``agreement`` (the ``agreement_made`` payload) in writing, once (its promise
    keys the message and its activity; the event is recorded in the inbox with the
    message). Answers how it went: "email", "sms" or "unsent"."""
    key = f"agreement-{agreement['promise_id']}"
    with svc.db.session() as session:
        if _already_sent(session, key):
            svc.db.first_time(session, event_id, "agreement_made")
            return "duplicate"
    system = svc.acting.system
    view = system.portfolio.get_contact_view(agreement["account_id"])
    account, institution_id = view["account"], agreement["institution_id"]
    subject, text, short = agreement_text(agreement, view)
    reasons = []
    for channel, to in _candidates(svc, view, institution_id):
        verdict = judged(system.activities, account["id"], channel, to)
        if not verdict["allowed"]:
            reasons.append(f"{'Correo' if channel == 'email' else 'SMS'} a {to}: "
                           f"{verdict['reason']} ({verdict['policy_version']})")
            continue
        if channel == "email":
            _queue_email(svc, session_key=key, agreement=agreement, view=view, to=to,
                         subject=subject, text=text, event_id=event_id)
        else:
            _queue_sms(svc, key, agreement, view, to, short, event_id)
        return channel
    why = "; ".join(reasons) or "el deudor no tiene correo ni celular a los que escribir"
    contact_log.log_activity(svc.acting, system.activities, {
        "account_id": account["id"], "kind": "note", "direction": "outbound",
        "started_at": datetime.now(timezone.utc).isoformat(),
        "description": (f"Acuerdo de pago {agreement['promise_id']} ({agreement['policy_version']}) "
                        f"no enviado por escrito: {why}")[:3900],
        "idempotency_key": f"messaging-{key}-unsent"}, institution_id)
    with svc.db.session() as session:
        svc.db.first_time(session, event_id, "agreement_made")
    log.warning("agreement of promise %s not sent in writing: %s", agreement["promise_id"], why)
    return "unsent"


def _candidates(svc, view: dict, institution_id: int):
    """Where the agreement may go, in order: the first email not marked do-not-contact
    (when the institution can send email), then the first phone that is no fax (when it
    has an SMS gateway). The policy still judges each."""
    with svc.db.session() as session:
        try:
            mailbox = svc._sending_mailbox(session, None, institution_id, None)
        except InvalidInput:
            mailbox = None
        config = session.get(SmsSettings, institution_id)
        texts = config is not None and config.active
    if mailbox is not None:
        for email in view.get("emails") or ():
            if not email.get("do_not_contact"):
                try:
                    yield "email", parsing.clean_address(email["address"], "to")
                    break
                except InvalidInput:
                    continue
    if texts:
        for phone in view.get("phones") or ():
            if phone.get("kind") != "fax" and not phone.get("do_not_call"):
                yield "sms", contact_policy.phone_digits(phone["number"])
                break


def _logged(svc, agreement, view, channel, description, key, **contact) -> dict:
    code = {"email": "CORREO_ENV", "sms": "SMS_ENV"}[channel]
    return contact_log.log_activity(svc.acting, svc.acting.system.activities, {
        "account_id": view["account"]["id"], "kind": channel, "direction": "outbound",
        "started_at": datetime.now(timezone.utc).isoformat(), "result_code": code,
        "description": description[:3900], "idempotency_key": f"messaging-{key}", **contact},
        agreement["institution_id"])


def _store(svc, row, event_id) -> None:
    try:
        with svc.db.session() as session:
            session.add(row)
            svc.db.first_time(session, event_id, "agreement_made")
    except IntegrityError:   # a redelivery raced this one: its message stands
        log.info("agreement message %s already queued", row.idempotency_key)


def _queue_email(svc, session_key, agreement, view, to, subject, text, event_id) -> None:
    with svc.db.session() as session:
        mailbox = svc._sending_mailbox(session, None, agreement["institution_id"], None)
        mailbox_id, domain = mailbox.id, mailbox.address.rsplit("@", 1)[1]
    public = str(uuidlib.uuid4())
    activity = _logged(svc, agreement, view, "email",
                       f"Acuerdo de pago {agreement['promise_id']} enviado por escrito "
                       f"({agreement['policy_version']}) a {to}:\n{text}", session_key, email=to)
    _store(svc, OutboundMessage(
        uuid=public, message_id=f"<{public}@{domain}>", institution_id=agreement["institution_id"],
        debtor_id=agreement["debtor_id"], account_id=view["account"]["id"], mailbox_id=mailbox_id,
        channel="email", template_id=None, language=agreement.get("language") or "es",
        to_address=to, subject=subject,
        body_text=text, body_html=templates.text_to_html(text), attachments=[], state="queued",
        activity_id=activity["id"], created_by=agreement["agent_id"],
        idempotency_key=session_key), event_id)


def _queue_sms(svc, key, agreement, view, number, text, event_id) -> None:
    length = sms.segments(text)
    activity = _logged(svc, agreement, view, "sms",
                       f"Acuerdo de pago {agreement['promise_id']} enviado por escrito "
                       f"({agreement['policy_version']}) por SMS a {number}:\n{text}", key,
                       phone=number[:40])
    _store(svc, SmsMessage(
        uuid=str(uuidlib.uuid4()), institution_id=agreement["institution_id"],
        debtor_id=agreement["debtor_id"], account_id=view["account"]["id"],
        direction="outbound", phone=number, body=text, encoding=length["encoding"],
        segments=length["segments"], template_id=None,
        language=agreement.get("language") or "es", state="queued",
        activity_id=activity["id"], created_by=agreement["agent_id"], idempotency_key=key),
        event_id)
