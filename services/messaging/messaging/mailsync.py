"""Syncing a mailbox over IMAP and matching what arrives to debtors.

One pass: log in, select the folder read-only, compare UIDVALIDITY with the one
remembered (a change means the server renumbered the folder: read it again from UID 1,
the unique Message-ID per mailbox keeps what we already have from being duplicated),
then FETCH the UIDs above the last one seen in batches. Each batch is matched and
committed in one transaction together with the new last UID, so a restart resumes
after the last committed batch and nothing is fetched twice. Logging the activities
and storing the attachments happens after that commit, each idempotent (keyed by the
inbound row), and is retried by the next pass until it succeeds.

Nothing here knows nameko: the caller gives the database and the service proxies.
"""
from __future__ import annotations

import hashlib
import logging
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from . import crypto, parsing
from .models import InboundMessage, Mailbox, MatchPattern, OutboundMessage

log = logging.getLogger(__name__)

BATCH = 250
#: what one batch may weigh in memory (a larger message goes alone)
BATCH_BYTES = 32 * 1024 * 1024
TIMEOUT = 20.0
#: larger messages are synced by their headers only (their body is not matched on)
MAX_MESSAGE_BYTES = 60 * 1024 * 1024
#: an activity may be logged at most this far back (the activities service's window)
ACTIVITY_WINDOW = timedelta(days=30)
DESCRIPTION_MAX = 3900


class MailError(Exception):
    """A mailbox that cannot be reached or logged into: a clear reason for the admin."""


def connect(mailbox: Mailbox, timeout: float = TIMEOUT) -> IMAPClient:
    password = crypto.decrypt(mailbox.imap_password)
    if password is None:
        raise MailError("No se pudo descifrar la contraseña IMAP: vuelva a capturarla")
    try:
        context = ssl.create_default_context() if mailbox.imap_tls else None
        client = IMAPClient(mailbox.imap_host, port=mailbox.imap_port, ssl=mailbox.imap_tls,
                            ssl_context=context, timeout=timeout)
    except (socket.gaierror, ConnectionError, socket.timeout, OSError) as exc:
        raise MailError(f"Servidor IMAP inalcanzable ({mailbox.imap_host}:{mailbox.imap_port}): "
                        f"{exc}") from None
    try:
        client.login(mailbox.imap_user, password)
    except LoginError:
        _quietly(client.logout)
        raise MailError("Usuario o contraseña IMAP incorrectos") from None
    except (IMAPClientError, OSError) as exc:
        _quietly(client.logout)
        raise MailError(f"El servidor IMAP rechazó la sesión: {exc}") from None
    return client


def _quietly(fn, *args):
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - closing a connection that already broke
        return None


def check(mailbox: Mailbox) -> dict:
    """Log in and select the folder: what the settings screen's "probar" answers."""
    client = connect(mailbox)
    try:
        info = client.select_folder(mailbox.imap_folder, readonly=True)
        return {"ok": True, "exists": int(info.get(b"EXISTS", 0)),
                "uidvalidity": int(info.get(b"UIDVALIDITY", 0)),
                "idle": client.has_capability("IDLE")}
    except IMAPClientError as exc:
        raise MailError(f"No existe la carpeta {mailbox.imap_folder!r}: {exc}") from None
    finally:
        _quietly(client.logout)


@dataclass
class SyncResult:
    mailbox_id: int
    fetched: int = 0
    new: int = 0
    matched: int = 0
    unmatched: int = 0
    bounces: int = 0
    duplicates: int = 0
    activities: int = 0
    resynced: bool = False
    errors: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _patterns(session, institution_id: int):
    rows = session.execute(select(MatchPattern).where(
        MatchPattern.institution_id == institution_id, MatchPattern.active)
        .order_by(MatchPattern.sort_order, MatchPattern.id)).scalars().all()
    out = []
    for row in rows:
        try:
            out.append((parsing.check_pattern(row.regex), row.target))
        except Exception:  # noqa: BLE001 - a pattern saved before a stricter check
            log.warning("pattern %s of institution %s skipped", row.id, institution_id)
    return out


def _synthetic_id(raw: bytes) -> str:
    return f"<sha256.{hashlib.sha256(raw).hexdigest()[:40]}@sin-message-id.recaudo>"


def sync(db, mailbox_id: int, portfolio, emit, after_commit=None) -> SyncResult:
    """One pass over a mailbox. ``portfolio`` answers ``match_debtors``; ``emit(session,
    type, payload)`` writes an event to the outbox. Raises MailError for an unreachable
    server or a wrong password (the caller records it on the mailbox)."""
    with db.session() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None or not mailbox.active:
            return SyncResult(mailbox_id)
        session.expunge(mailbox)
        patterns = _patterns(session, mailbox.institution_id)
    result = SyncResult(mailbox_id)
    client = connect(mailbox)
    try:
        try:
            info = client.select_folder(mailbox.imap_folder, readonly=True)
        except IMAPClientError as exc:
            raise MailError(f"No existe la carpeta {mailbox.imap_folder!r}: {exc}") from None
        uidvalidity = int(info[b"UIDVALIDITY"])
        last_uid = mailbox.last_uid
        if mailbox.uidvalidity is not None and mailbox.uidvalidity != uidvalidity:
            log.warning("mailbox %s: UIDVALIDITY %s -> %s, reading the folder again",
                        mailbox.id, mailbox.uidvalidity, uidvalidity)
            result.resynced = True
            last_uid = 0
        if mailbox.uidvalidity != uidvalidity:
            with db.session() as session:
                session.execute(update(Mailbox).where(Mailbox.id == mailbox.id).values(
                    uidvalidity=uidvalidity, last_uid=last_uid,
                    idle_supported=client.has_capability("IDLE")))
        uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        sizes = {}
        for start in range(0, len(uids), 1000):
            for uid, data in client.fetch(uids[start:start + 1000], ["RFC822.SIZE"]).items():
                sizes[uid] = int(data.get(b"RFC822.SIZE", 0))
        for batch in _batches(uids, sizes):
            small = [u for u in batch if sizes.get(u, 0) <= MAX_MESSAGE_BYTES]
            large = [u for u in batch if u not in small]
            raws = {}
            if small:
                for uid, data in client.fetch(small, ["BODY.PEEK[]"]).items():
                    raws[uid] = data.get(b"BODY[]") or b""
            if large:
                for uid, data in client.fetch(large, ["BODY.PEEK[HEADER]"]).items():
                    raws[uid] = data.get(b"BODY[HEADER]") or b""
            messages = [(uid, raws.get(uid, b""), sizes.get(uid, 0), uid in large)
                        for uid in batch]
            try:
                _store_batch(db, mailbox, uidvalidity, messages, patterns, portfolio, emit, result)
            except SQLAlchemyError:
                # one message the database will not take must not stop the mailbox: store
                # them one by one, and a refused one as a bare row with its problem
                log.exception("mailbox %s: batch refused, storing one by one", mailbox.id)
                for message in messages:
                    try:
                        _store_batch(db, mailbox, uidvalidity, [message], patterns, portfolio,
                                     emit, result)
                    except SQLAlchemyError as exc:
                        _store_broken(db, mailbox, uidvalidity, message, exc, result)
            result.fetched += len(batch)
            if after_commit:
                after_commit()
    finally:
        _quietly(client.logout)
    with db.session() as session:
        session.execute(update(Mailbox).where(Mailbox.id == mailbox.id).values(
            last_sync_at=datetime.now(timezone.utc), last_error=None, last_error_at=None))
    return result


def _batches(uids: list[int], sizes: dict[int, int]):
    """Runs of at most BATCH messages and BATCH_BYTES (one large message alone)."""
    batch, total = [], 0
    for uid in uids:
        size = min(sizes.get(uid, 0), MAX_MESSAGE_BYTES + 1)
        if batch and (len(batch) >= BATCH or total + size > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def _store_batch(db, mailbox: Mailbox, uidvalidity: int, messages, patterns, portfolio, emit,
                 result: SyncResult) -> None:
    parsed = []
    for uid, raw, size, headers_only in messages:
        facts = parsing.parse(raw)
        if not facts["message_id"]:
            facts["message_id"] = _synthetic_id(raw)
        if headers_only:
            facts["problem"] = (f"Mensaje de {size // (1024 * 1024)} MB: sólo se guardaron sus "
                                f"encabezados (máximo {MAX_MESSAGE_BYTES // (1024 * 1024)} MB)")
        parsed.append((uid, raw, size, facts))

    with db.session() as session:
        ids = [f["message_id"] for *_, f in parsed]
        known = set(session.execute(select(InboundMessage.message_id).where(
            InboundMessage.mailbox_id == mailbox.id, InboundMessage.message_id.in_(ids))
        ).scalars())
        # replies to and bounces of our own messages
        refs = {r for *_, f in parsed for r in ([f["in_reply_to"]] + f["references"]) if r}
        originals = {}
        bounce_uuids = {f["bounce"]["original"][1] for *_, f in parsed
                        if f["bounce"] and f["bounce"]["original"]
                        and f["bounce"]["original"][0] == "uuid"}
        if refs or bounce_uuids:
            for row in session.execute(select(OutboundMessage).where(
                    OutboundMessage.institution_id == mailbox.institution_id,
                    (OutboundMessage.message_id.in_(refs or [""]))
                    | (OutboundMessage.uuid.in_(bounce_uuids or ["00000000-0000-0000-0000-000000000000"])))
            ).scalars():
                originals[row.message_id] = row
                originals[row.uuid] = row

        fresh = []
        seen = set()
        for uid, raw, size, facts in parsed:
            if facts["message_id"] in known or facts["message_id"] in seen:
                result.duplicates += 1
                continue
            seen.add(facts["message_id"])
            fresh.append((uid, raw, size, facts))

        candidates = {"emails": set(), "account_numbers": set(), "customer_numbers": set()}
        for *_, facts in fresh:
            if facts["bounce"]:
                continue
            if parsing.is_address(facts["from_address"]):
                candidates["emails"].add(facts["from_address"])
            found = parsing.find_numbers(patterns, facts["subject"], facts["body_text"])
            facts["numbers"] = found
            for target, values in found.items():
                candidates[target + "s"].update(values)
        answer = {"emails": {}, "account_numbers": {}, "customer_numbers": {}}
        if any(candidates.values()):
            answer = portfolio.match_debtors(mailbox.institution_id,
                                             sorted(candidates["emails"]),
                                             sorted(candidates["account_numbers"]),
                                             sorted(candidates["customer_numbers"]))

        for uid, raw, size, facts in fresh:
            row = {"mailbox_id": mailbox.id, "institution_id": mailbox.institution_id,
                   "uidvalidity": uidvalidity, "uid": uid, "message_id": facts["message_id"],
                   "in_reply_to": facts["in_reply_to"], "from_address": facts["from_address"],
                   "from_name": facts["from_name"], "subject": facts["subject"],
                   "body_text": facts["body_text"].replace("\x00", ""), "sent_at": facts["sent_at"],
                   "size": size, "problem": facts["problem"],
                   "attachments": [meta for meta, _ in facts["attachments"]]}
            bounce = facts["bounce"]
            if bounce is not None:
                original = None
                if bounce["original"]:
                    original = originals.get(bounce["original"][1])
                    if original is None and bounce["original"][0] == "message_id":
                        original = session.execute(select(OutboundMessage).where(
                            OutboundMessage.message_id == bounce["original"][1],
                            OutboundMessage.institution_id == mailbox.institution_id)
                        ).scalar_one_or_none()
                row.update(state="bounce", matched_by="bounce")
                if original is not None:
                    row.update(outbound_id=original.id, debtor_id=original.debtor_id)
                    _mark_bounced(session, emit, original, bounce)
                result.bounces += 1
            else:
                match = _match(facts, originals, answer)
                if match:
                    row.update(state="matched", **match)
                    result.matched += 1
                else:
                    row.update(state="unmatched")
                    result.unmatched += 1
            if facts["attachments"] and row["state"] in ("matched", "unmatched"):
                row["raw"] = raw   # until the attachments are documents
            row = {k: _clean(v) for k, v in row.items()}
            row["attachments"] = [{k: _clean(v) for k, v in a.items()} for a in row["attachments"]]
            inserted = session.execute(insert(InboundMessage).values(**row)
                                       .on_conflict_do_nothing().returning(InboundMessage.id)
                                       ).scalar()
            if inserted is None:
                result.duplicates += 1
                continue
            result.new += 1
            emit(session, "message_received", {
                "inbound_id": inserted, "mailbox_id": mailbox.id,
                "institution_id": mailbox.institution_id, "state": row["state"],
                "debtor_id": row.get("debtor_id"), "account_id": row.get("account_id"),
                "from_address": row["from_address"], "subject": row["subject"]})
        top = max(uid for uid, *_ in messages)
        session.execute(update(Mailbox).where(Mailbox.id == mailbox.id).values(
            last_uid=top, uidvalidity=uidvalidity))


def _store_broken(db, mailbox: Mailbox, uidvalidity: int, message, exc, result) -> None:
    uid, raw, size, _ = message
    with db.session() as session:
        session.execute(insert(InboundMessage).values(
            mailbox_id=mailbox.id, institution_id=mailbox.institution_id, uidvalidity=uidvalidity,
            uid=uid, message_id=_synthetic_id(raw), size=size, state="unmatched",
            problem=f"No se pudo guardar el mensaje: {type(exc).__name__}"[:500],
        ).on_conflict_do_nothing())
        session.execute(update(Mailbox).where(Mailbox.id == mailbox.id, Mailbox.last_uid < uid)
                        .values(last_uid=uid))
    result.unmatched += 1
    result.errors.append(f"UID {uid}: {type(exc).__name__}")


def _clean(value):
    """Text as PostgreSQL takes it (no NUL characters, which mail may carry)."""
    return value.replace("\x00", "") if isinstance(value, str) else value


def _match(facts: dict, originals: dict, answer: dict) -> dict | None:
    """Who the message is about: a reply to our message, then its sender (when the
    address is one debtor's), then the numbers the patterns found."""
    for ref in [facts["in_reply_to"], *facts["references"]]:
        original = originals.get(ref) if ref else None
        if original is not None:
            return {"matched_by": "reply", "debtor_id": original.debtor_id,
                    "account_id": original.account_id, "outbound_id": original.id}
    by_sender = answer["emails"].get(facts["from_address"], [])
    numbers = facts.get("numbers", {})
    by_number = [answer["account_numbers"].get(n) for n in numbers.get("account_number", [])] + \
                [answer["customer_numbers"].get(n) for n in numbers.get("customer_number", [])]
    by_number = [m for m in by_number if m]
    if len({m["debtor_id"] for m in by_sender}) == 1:
        pick = by_sender[0]
        # the pattern may name which of the debtor's accounts
        for m in by_number:
            if m["debtor_id"] == pick["debtor_id"]:
                pick = m
                break
        return {"matched_by": "sender", "debtor_id": pick["debtor_id"],
                "account_id": pick["account_id"]}
    if by_number:
        debtors = {m["debtor_id"] for m in by_number}
        if len(debtors) == 1 and (not by_sender or by_number[0]["debtor_id"] in
                                   {m["debtor_id"] for m in by_sender}):
            return {"matched_by": "pattern", "debtor_id": by_number[0]["debtor_id"],
                    "account_id": by_number[0]["account_id"]}
    return None


def _mark_bounced(session, emit, original: OutboundMessage, bounce: dict) -> None:
    if original.bounced_at is not None:
        return
    now = datetime.now(timezone.utc)
    reason = " ".join(x for x in (bounce.get("status"), bounce.get("diagnostic")) if x) or \
        "Rebote sin detalle"
    original.bounced_at = now
    original.state = "failed"
    original.failed_at = original.failed_at or now
    original.last_error = f"Rebotado: {reason}"[:2000]
    emit(session, "message_failed", {
        "message_uuid": original.uuid, "institution_id": original.institution_id,
        "debtor_id": original.debtor_id, "account_id": original.account_id,
        "channel": original.channel, "reason": original.last_error, "bounced": True,
        "campaign_id": original.campaign_id})


def activity_for(row: InboundMessage) -> dict:
    """The inbound email activity a matched message becomes (keyed by the row)."""
    started = row.sent_at or row.synced_at
    now = datetime.now(timezone.utc)
    started = min(max(started, now - ACTIVITY_WINDOW), now)
    names = ", ".join(a.get("name", "") for a in row.attachments or [])
    description = f"Correo recibido de {row.from_address}: {row.subject}\n\n{row.body_text}"
    if names:
        description = f"Adjuntos: {names}\n" + description
    return {"account_id": row.account_id, "kind": "email", "direction": "inbound",
            "email": row.from_address[:254] or None, "started_at": started.isoformat(),
            "result_code": INBOUND_CODE, "description": description[:DESCRIPTION_MAX],
            # the row's id and birth: a retry finds the same entry, a recreated table does not
            "idempotency_key": f"messaging-inbound-{row.id}-{row.synced_at.timestamp():.0f}"}


INBOUND_CODE = "CORREO_REC"
