"""Searching a mailbox on its server with IMAP SEARCH.

The criteria become one SEARCH command (AND of FROM, SUBJECT, TEXT, SINCE, BEFORE,
HEADER), so the server does the work; only the newest ``limit`` matches' envelopes
are fetched. Values go as IMAP strings (imapclient quotes them; control characters
are refused by the schema), in UTF-8 when the server takes CHARSET; a server without it
is asked again in ASCII only when every value is ASCII. Dates go in IMAP's own form
(``07-Dec-0001``: English month, four-digit year, whatever the year or the locale).
"""
from __future__ import annotations

from datetime import date, timedelta

from imapclient.exceptions import IMAPClientError

from . import mailsync


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imap_date(day: date) -> bytes:
    """RFC 3501's date (``date-day "-" date-month "-" date-year``, a 4-digit year)."""
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year:04d}".encode("ascii")


def criteria(query: dict) -> list:
    out = []
    if query.get("sender"):
        out += ["FROM", query["sender"]]
    if query.get("subject"):
        out += ["SUBJECT", query["subject"]]
    if query.get("text"):
        out += ["TEXT", query["text"]]
    if query.get("since"):
        out += ["SINCE", imap_date(query["since"])]
    if query.get("before") and query["before"] < date.max:   # date.max: no limit at all
        # inclusive for the user: IMAP's BEFORE is exclusive
        out += ["BEFORE", imap_date(query["before"] + timedelta(days=1))]
    if query.get("header_name"):
        out += ["HEADER", query["header_name"], query.get("header_value") or ""]
    return out


def _ascii(value) -> bool:
    return value.isascii() if isinstance(value, (str, bytes)) else True


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        from email.header import decode_header, make_header
        try:
            return str(make_header(decode_header(value.decode("ascii", "replace"))))
        except Exception:  # noqa: BLE001
            return value.decode("utf-8", "replace")
    return str(value)


def _address(envelope) -> tuple[str, str]:
    people = envelope.from_ or ()
    if not people:
        return "", ""
    person = people[0]
    mailbox, host = _text(person.mailbox), _text(person.host)
    return _text(person.name), f"{mailbox}@{host}".lower() if host else mailbox


def search(mailbox, query: dict) -> dict:
    client = mailsync.connect(mailbox)
    try:
        try:
            client.select_folder(mailbox.imap_folder, readonly=True)
            asked = criteria(query)
            if not asked:   # only a "before" of the last day there is: everything
                asked = ["ALL"]
            try:
                uids = client.search(asked, charset="UTF-8")
            except IMAPClientError:
                if not all(_ascii(value) for value in asked):
                    raise
                uids = client.search(asked)
        except IMAPClientError as exc:
            raise mailsync.MailError(f"El servidor rechazó la búsqueda: {exc}") from None
        uids = sorted(uids, reverse=True)
        shown = uids[:query["limit"]]
        items = []
        if shown:
            data = client.fetch(shown, ["ENVELOPE", "RFC822.SIZE"])
            for uid in shown:
                envelope = data.get(uid, {}).get(b"ENVELOPE")
                if envelope is None:
                    continue
                name, address = _address(envelope)
                items.append({
                    "uid": uid, "message_id": _text(envelope.message_id),
                    "from_name": name, "from_address": address,
                    "subject": _text(envelope.subject),
                    "date": envelope.date.isoformat() if envelope.date else None,
                    "size": data[uid].get(b"RFC822.SIZE", 0)})
        return {"total": len(uids), "items": items}
    finally:
        mailsync._quietly(client.logout)
