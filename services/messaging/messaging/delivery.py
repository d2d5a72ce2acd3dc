"""Sending the queued messages over SMTP, with retries on temporary failures.

A message is built from its row (headers carry our public id as X-Recaudo-Message-Id
and inside the Message-ID, so bounces and replies find it again) and sent through its
mailbox's SMTP account. The server's answer decides: accepted -> ``sent``; a 4xx (or
an unreachable server) -> tried again later with exponential backoff, up to
MAX_ATTEMPTS; a 5xx -> ``failed`` with the server's answer. A crash between the
server's acceptance and our commit sends the message again on the next pass: SMTP is
at-least-once, and the receiver sees the same Message-ID.

``deliver`` works the queue (the service's timer calls it): each due message is locked,
tried, and its outcome (``message_sent`` / ``message_failed``) committed on its own; a
letter is only filed for the post, its PDF stored as a document later
(``store_pending_pdfs``, like a fax's).
"""
from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime

from sqlalchemy import func, select

from . import attachments, crypto, parsing, portal_link
from .models import Mailbox, OutboundMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
#: seconds before the 2nd, 3rd... attempt: BACKOFF * 2**(attempt-1), at most BACKOFF_MAX
BACKOFF = 30.0
BACKOFF_MAX = 3600.0
TIMEOUT = 30.0
#: messages one pass of the timer sends at most
DELIVERY_BATCH = 20


class Temporary(Exception):
    """Try again later (4xx, connection trouble)."""


class Permanent(Exception):
    """The server refused for good (5xx): the message fails with this answer."""


def build(message: OutboundMessage, mailbox: Mailbox, files: list[tuple[str, str, bytes]]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = parsing.format_address(mailbox.name, mailbox.address)
    msg["To"] = message.to_address
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = message.message_id
    msg[parsing.HEADER] = message.uuid
    msg["Content-Language"] = message.language
    msg.set_content(message.body_text)
    if message.body_html:
        msg.add_alternative(message.body_html, subtype="html")
    for name, content_type, data in files:
        maintype, _, subtype = (content_type or "application/octet-stream").partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=name)
    return msg


def build_report(mailbox: Mailbox, to: str, subject: str, body: str, message_id: str,
                 attachment: tuple[str, str, bytes]) -> EmailMessage:
    """A scheduled report's email: plain text and the report file."""
    msg = EmailMessage()
    msg["From"] = parsing.format_address(mailbox.name, mailbox.address)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = message_id
    msg.set_content(body)
    name, content_type, data = attachment
    maintype, _, subtype = content_type.partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
    return msg


def send(mailbox: Mailbox, msg: EmailMessage, timeout: float = TIMEOUT) -> str:
    """Hand ``msg`` to the mailbox's SMTP server; the server's answer, or Temporary /
    Permanent with it."""
    password = crypto.decrypt(mailbox.smtp_password) if mailbox.smtp_password else None
    try:
        if mailbox.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(mailbox.smtp_host, mailbox.smtp_port, timeout=timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise Temporary(f"Servidor SMTP inalcanzable ({mailbox.smtp_host}:{mailbox.smtp_port}):"
                        f" {exc}") from None
    try:
        smtp.ehlo()
        if mailbox.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if mailbox.smtp_user and password:
            smtp.login(mailbox.smtp_user, password)
        code, answer = smtp.mail(mailbox.address)
        if code != 250:
            raise _classify(code, answer)
        code, answer = smtp.rcpt(message_to(msg))
        if code not in (250, 251):
            raise _classify(code, answer)
        code, answer = smtp.data(msg.as_bytes(policy=SMTP_POLICY))
        if code != 250:
            raise _classify(code, answer)
        return f"{code} {answer.decode(errors='replace')}".strip()[:1000]
    except smtplib.SMTPAuthenticationError as exc:
        raise Permanent(f"{exc.smtp_code} Usuario o contraseña SMTP incorrectos") from None
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise _classify(code, text) from None
    except smtplib.SMTPResponseException as exc:
        raise _classify(exc.smtp_code, exc.smtp_error) from None
    except (smtplib.SMTPServerDisconnected, socket.timeout, OSError) as exc:
        raise Temporary(f"Conexión SMTP interrumpida: {exc}") from None
    finally:
        try:
            smtp.quit()
        except Exception:  # noqa: BLE001
            smtp.close()


def message_to(msg: EmailMessage) -> str:
    return parsing.recipients(str(msg["To"]))[0]


def _classify(code: int, text) -> Exception:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    answer = f"{code} {text}".strip()[:1000]
    return Temporary(answer) if 400 <= code < 500 else Permanent(answer)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


# --- the queue: what is due, tried once per pass ---------------------------------------

def deliver(db, acting, limit: int = DELIVERY_BATCH) -> int:
    """Send up to ``limit`` queued messages that are due, each locked (SKIP LOCKED: the
    instances share the queue) and its outcome committed on its own; the documents service
    is asked for attachments as the platform (``acting.system``)."""
    done = 0
    while done < limit:
        with db.session() as session:
            row = session.execute(select(OutboundMessage).where(
                OutboundMessage.state == "queued",
                OutboundMessage.next_attempt_at <= func.now())
                .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
                .limit(1).with_for_update(skip_locked=True)).scalar_one_or_none()
            if row is None:
                break
            _attempt(db, acting, session, row)
        done += 1
    return done

def _attempt(db, acting, session, row: OutboundMessage) -> None:
    now = datetime.now(timezone.utc)
    row.attempts += 1
    if row.channel == "letter":   # rendered already: filed for the post (settle stores it)
        _sent(db, session, row, now, "Carta generada para envío postal")
        return
    mailbox = session.get(Mailbox, row.mailbox_id)
    try:
        files = attachments.outbound_files(row, acting.system.documents)
        msg = build(row, mailbox, files)
        response = send(mailbox, msg)
    except (Temporary, attachments.NotYet) as exc:
        row.last_error = str(exc)[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            _fail(db, session, row, f"Sin éxito tras {row.attempts} intentos: {exc}")
        else:
            row.next_attempt_at = now + backoff(row.attempts)
            log.info("message %s: temporary failure (attempt %d): %s", row.uuid,
                     row.attempts, exc)
        return
    except (Permanent, attachments.Refused) as exc:
        _fail(db, session, row, str(exc))
        return
    _sent(db, session, row, now, response)

def _sent(db, session, row: OutboundMessage, now, response: str) -> None:
    row.state, row.sent_at, row.smtp_response, row.last_error = "sent", now, response, None
    _forget_links(row)
    db.emit(session, "message_sent", {
        "message_uuid": row.uuid, "institution_id": row.institution_id,
        "debtor_id": row.debtor_id, "account_id": row.account_id, "channel": row.channel,
        "to_address": row.to_address, "activity_id": row.activity_id,
        "attempts": row.attempts, "response": response, "campaign_id": row.campaign_id})

def _fail(db, session, row: OutboundMessage, reason: str) -> None:
    row.state, row.failed_at, row.last_error = "failed", datetime.now(timezone.utc), reason[:2000]
    _forget_links(row)
    log.warning("message %s failed: %s", row.uuid, reason)
    db.emit(session, "message_failed", {
        "message_uuid": row.uuid, "institution_id": row.institution_id,
        "debtor_id": row.debtor_id, "account_id": row.account_id, "channel": row.channel,
        "reason": row.last_error, "bounced": False, "campaign_id": row.campaign_id})

def _forget_links(row: OutboundMessage) -> None:
    """Handed over (or never to be): the body keeps no usable portal link (portal_link.py),
    rewritten in the transaction that records the outcome."""
    row.body_text = portal_link.mask(row.body_text or "")
    row.body_html = portal_link.mask(row.body_html or "")


def store_pending_pdfs(db, acting) -> None:
    """Sent faxes whose PDF is not a document yet (the documents service was away)."""
    with db.session() as session:
        rows = session.execute(select(OutboundMessage).where(
            OutboundMessage.state != "queued", OutboundMessage.channel.in_(("fax", "letter")),
            OutboundMessage.pdf.is_not(None)).limit(20).with_for_update(skip_locked=True)
        ).scalars().all()
        for row in rows:
            attachments.store_fax_pdf(row, acting.system.documents)
