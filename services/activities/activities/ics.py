"""iCalendar (RFC 5545) text of an agent's agenda, for subscribing from Outlook or a phone.

Pure functions: text values are escaped (backslash, semicolon, comma, newline), lines
end in CRLF and are folded at 75 octets without splitting a UTF-8 character.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

PRODID = "-//Recaudo//Agenda de cobranza//ES"
EVENT_MINUTES = 15
KIND_LABELS = {"callback": "Llamar", "visit": "Visita"}


def escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def fold(line: str) -> str:
    """Split a content line into chunks of at most 75 octets (continuations start with a space)."""
    encoded = line.encode()
    if len(encoded) <= 75:
        return line
    parts, current, size, limit = [], [], 0, 75
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, 74  # the leading space takes one octet
        current.append(char)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def calendar(name: str, items: list[dict], now: datetime | None = None,
             domain: str = "recaudo") -> str:
    """``items``: pending agenda items (dicts with id, kind, due_at (aware), account_id, note)."""
    now = now or datetime.now(timezone.utc)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{escape(name)}"]
    for item in items:
        label = KIND_LABELS.get(item["kind"], item["kind"])
        summary = f"{label}: cuenta {item['account_id']}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:agenda-{item['id']}@{domain}",
            f"DTSTAMP:{_stamp(now)}",
            f"DTSTART:{_stamp(item['due_at'])}",
            f"DTEND:{_stamp(item['due_at'] + timedelta(minutes=EVENT_MINUTES))}",
            f"SUMMARY:{escape(summary)}",
        ]
        if item.get("note"):
            lines.append(f"DESCRIPTION:{escape(item['note'])}")
        lines.append("STATUS:CONFIRMED")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)
