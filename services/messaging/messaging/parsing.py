"""Reading inbound mail: headers, the text to match on, attachments and bounces.

Everything here is pure (bytes in, dicts out) so it is tested without servers. A
message the email package cannot make sense of still yields a row (with ``problem``
set) rather than an exception: one bad message never stops a mailbox's sync.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from recaudo_common.errors import InvalidInput

from .contracts import is_address

#: what pattern matching reads of a message (regexes run over at most this much text)
MATCH_TEXT_MAX = 8_000
BODY_KEEP_MAX = 20_000
HEADER = "X-Recaudo-Message-Id"
_TAGS = re.compile(r"<[^>]{0,2000}>")


def clean_address(value: str, field: str = "to") -> str:
    value = (value or "").strip()
    if not is_address(value):
        raise InvalidInput("Dirección de correo inválida",
                           {field: ["No es una dirección de correo válida"]})
    return value.lower()


def _header(msg, name: str) -> str:
    try:
        value = msg.get(name)
        return " ".join(str(value).split()) if value is not None else ""
    except Exception:  # noqa: BLE001 - a malformed header reads as missing
        return ""


def _message_id(value: str) -> str:
    value = value.strip()
    match = re.search(r"<[^<>\s]{1,290}>", value)
    return match.group(0) if match else value[:300]


def _body_text(msg: EmailMessage) -> str:
    part = None
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        part = None
    if part is None:
        return ""
    try:
        content = part.get_content()
    except Exception:  # noqa: BLE001 - undecodable charset: keep what decodes
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if part.get_content_type() == "text/html":
        content = _TAGS.sub(" ", content)
    return content[:BODY_KEEP_MAX]


def _attachments(msg: EmailMessage) -> list[tuple[dict, bytes]]:
    out = []
    try:
        parts = list(msg.iter_attachments()) if msg.is_multipart() else []
    except Exception:  # noqa: BLE001
        parts = []
    for part in parts:
        if part.get_content_maintype() == "multipart" or part.get_content_type() in (
                "message/delivery-status", "message/rfc822", "text/rfc822-headers"):
            continue
        name = part.get_filename() or "adjunto"
        payload = part.get_payload(decode=True) or b""
        out.append(({"name": name[:200], "content_type": part.get_content_type(),
                     "size": len(payload)}, payload))
    return out


def parse(raw: bytes) -> dict:
    """The fields an inbound row keeps, the attachments' bytes, and bounce facts."""
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001
        return {"message_id": "", "from_address": "", "from_name": "", "subject": "",
                "in_reply_to": None, "references": [], "sent_at": None, "body_text": "",
                "attachments": [], "bounce": None, "problem": f"Mensaje ilegible: {exc}"}
    problem = None
    if msg.defects:
        problem = "Defectos de formato: " + ", ".join(sorted({type(d).__name__ for d in msg.defects}))
    name, address = parseaddr(_header(msg, "From"))
    sent_at = None
    try:
        date = msg.get("Date")
        if date:
            sent_at = parsedate_to_datetime(str(date))
            if sent_at.tzinfo is None:
                sent_at = sent_at.replace(tzinfo=timezone.utc)
    except Exception:  # noqa: BLE001
        sent_at = None
    references = re.findall(r"<[^<>\s]{1,290}>", _header(msg, "References"))
    return {
        "message_id": _message_id(_header(msg, "Message-ID")),
        "from_address": address.lower()[:254] if is_address(address) else address[:254],
        "from_name": name[:200],
        "subject": _header(msg, "Subject")[:300],
        "in_reply_to": _message_id(_header(msg, "In-Reply-To")) or None,
        "references": references,
        "sent_at": sent_at,
        "body_text": _body_text(msg),
        "attachments": _attachments(msg),
        "bounce": bounce_of(msg),
        "problem": problem,
    }


def bounce_of(msg: EmailMessage) -> dict | None:
    """A delivery status notification: the status and our message it refers to (by the
    X-Recaudo-Message-Id or Message-ID of the returned original), or None."""
    content_type = msg.get_content_type()
    sender = parseaddr(_header(msg, "From"))[1].lower()
    is_report = content_type == "multipart/report" and \
        msg.get_param("report-type", "").lower() == "delivery-status"
    if not is_report and not sender.startswith(("mailer-daemon@", "postmaster@")):
        return None
    status, diagnostic, ours = "", "", None
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            text = _raw_text(part)
            found = re.search(r"(?im)^Status:\s*([245]\.\d{1,3}\.\d{1,3})", text)
            status = found.group(1) if found else status
            found = re.search(r"(?im)^Diagnostic-Code:\s*(.+)$", text)
            diagnostic = found.group(1).strip()[:500] if found else diagnostic
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            text = _raw_text(part)
            found = re.search(rf"(?im)^{HEADER}:\s*([0-9a-f-]{{36}})", text)
            if found:
                ours = ("uuid", found.group(1).lower())
            elif ours is None:
                found = re.search(r"(?im)^Message-ID:\s*(<[^<>\s]+>)", text)
                if found:
                    ours = ("message_id", found.group(1))
    if ours is None:  # some servers quote the original in the text part only
        text = _raw_text(msg)[:200_000]
        found = re.search(rf"(?im){HEADER}:\s*([0-9a-f-]{{36}})", text)
        if found:
            ours = ("uuid", found.group(1).lower())
    return {"status": status, "diagnostic": diagnostic, "original": ours}


def _raw_text(part) -> str:
    try:
        if part.is_multipart():
            return "\n".join(_raw_text(p) for p in part.iter_parts()) if \
                part.get_content_maintype() == "multipart" else part.as_string()
        payload = part.get_payload(decode=True)
        if payload is None:
            payload = part.get_payload()
            return payload if isinstance(payload, str) else str(payload)
        return payload.decode("utf-8", "replace")
    except Exception:  # noqa: BLE001
        return ""


# --- matching by pattern ----------------------------------------------------------------------

#: quantified groups that themselves contain a quantifier: the classic catastrophic shapes
_NESTED = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")


def check_pattern(regex: str) -> re.Pattern:
    """Compile an admin's pattern, refusing what could backtrack catastrophically."""
    if len(regex) > 300:
        raise InvalidInput("Patrón demasiado largo", {"regex": ["A lo más 300 caracteres"]})
    if _NESTED.search(regex) or re.search(r"\\[1-9]", regex):
        raise InvalidInput("Patrón peligroso", {"regex": [
            "Sin cuantificadores anidados como (a+)+ ni referencias hacia atrás"]})
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise InvalidInput("Patrón inválido", {"regex": [f"Expresión regular inválida: {exc}"]}) \
            from None
    if compiled.groups > 1:
        raise InvalidInput("Patrón inválido", {"regex": ["A lo más un grupo (el número)"]})
    return compiled


def find_numbers(patterns: list[tuple[re.Pattern, str]], subject: str, body: str) -> dict:
    """target -> the candidate numbers the patterns find (subject first, then body)."""
    text = (subject + "\n" + body)[:MATCH_TEXT_MAX]
    found: dict[str, list[str]] = {}
    for compiled, target in patterns:
        for match in compiled.finditer(text):
            value = (match.group(1) if compiled.groups else match.group(0)) or ""
            value = value.strip()[:40]
            if value and value not in found.setdefault(target, []):
                found[target].append(value)
            if len(found[target]) >= 5:
                break
    return found


def recipients(value: str) -> list[str]:
    return [a.lower() for _, a in getaddresses([value]) if is_address(a)]


def format_address(name: str, address: str) -> str:
    return str(Address(display_name=name or "", addr_spec=address))


def received_at(sent_at: datetime | None) -> datetime:
    return sent_at or datetime.now(timezone.utc)
