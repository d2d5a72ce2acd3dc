"""Mailboxes as the service syncs them: one pass per mailbox at a time across every instance
(``mailsync`` reads and matches the mail), a failure recorded on its mailbox, then each
matched message logged in the contact log and its attachments stored as documents (the
activities and documents services may be away: what is left waits for the next pass).

The timers and RPCs that start these are in ``service.py``; they act as the platform
(``acting.system``), since no user is behind them.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from time import monotonic, sleep

import eventlet
from sqlalchemy import select, text, update
from sqlalchemy.orm import defer

from . import attachments, contact_log, mailsync
from .models import InboundMessage, Mailbox

log = logging.getLogger(__name__)

#: matched messages logged at once (each an RPC round trip and a transaction of its own)
PENDING_CONCURRENCY = 8


class _Fresh:
    """A service's proxy signed anew at every call (a long sync outlives one identity)."""

    def __init__(self, acting, service_name: str):
        self._acting, self._service_name = acting, service_name

    def __getattr__(self, method):
        return getattr(getattr(self._acting.system, self._service_name), method)


def sync_one(db, acting, mailbox_id: int, wait_seconds: float = 0) -> dict:
    """Sync one mailbox and log what matched, one pass per mailbox at a time across every
    instance (a pass asked for waits up to ``wait_seconds`` for the running one); a failure
    is recorded on its mailbox and answered, not raised."""
    with db.engine.connect() as lock:
        # one pass per mailbox at a time, across every instance of the service
        deadline = monotonic() + wait_seconds
        while not lock.execute(text("SELECT pg_try_advisory_lock(hashtext('messaging.sync'),"
                                    " :m)"), {"m": mailbox_id}).scalar():
            lock.commit()
            if monotonic() > deadline:
                return {"mailbox_id": mailbox_id, "busy": True}
            sleep(0.2)
        try:
            result = mailsync.sync(db, mailbox_id, _Fresh(acting, "portfolio"), db.emit)
            out = result.as_dict()
        except mailsync.MailError as exc:
            _record_error(db, mailbox_id, str(exc))
            out = {"mailbox_id": mailbox_id, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - recorded, the other mailboxes go on
            log.exception("sync of mailbox %s failed", mailbox_id)
            _record_error(db, mailbox_id, f"Error inesperado: {exc}")
            out = {"mailbox_id": mailbox_id, "error": str(exc)}
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(hashtext('messaging.sync'), :m)"),
                         {"m": mailbox_id})
            lock.commit()
    out["activities"] = log_pending(db, acting, mailbox_id, wait=wait_seconds > 0)
    return out

def _record_error(db, mailbox_id: int, message: str) -> None:
    log.warning("mailbox %s: %s", mailbox_id, message)
    with db.session() as session:
        session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(
            last_error=message[:2000], last_error_at=datetime.now(timezone.utc)))

def log_pending(db, acting, mailbox_id: int | None = None, wait: bool = False) -> int:
    """Matched inbound messages whose activity is not logged yet, one pass at a time
    across the service's instances: the timer skips while another pass runs; a sync
    asked for by a user waits for it (what is left then is its own)."""
    with db.engine.connect() as lock:
        deadline = monotonic() + (600 if wait else 0)
        while not lock.execute(text("SELECT pg_try_advisory_lock(hashtext('messaging."
                                    "pending'))")).scalar():
            lock.commit()
            if monotonic() > deadline:
                return 0
            sleep(0.2)
        try:
            return _log_pending_locked(db, acting, mailbox_id)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(hashtext('messaging.pending'))"))
            lock.commit()

def _log_pending_locked(db, acting, mailbox_id: int | None, limit: int = 20_000) -> int:
    """Log each (idempotent: keyed by the row), then its attachments as documents."""
    with db.session() as session:
        query = select(InboundMessage).where(InboundMessage.account_id.is_not(None),
                                             InboundMessage.activity_id.is_(None),
                                             InboundMessage.state == "matched")
        if mailbox_id is not None:
            query = query.where(InboundMessage.mailbox_id == mailbox_id)
        rows = session.execute(query.options(defer(InboundMessage.raw))
                               .order_by(InboundMessage.id).limit(limit)).scalars().all()
        for row in rows:
            session.expunge(row)
    for institution_id in {row.institution_id for row in rows}:
        contact_log.ensure_codes(acting, institution_id)   # once, before the concurrent loggings

    def log_one(row) -> int:
        try:
            activity = contact_log.log_activity(acting, acting.system.activities,
                                                mailsync.activity_for(row), row.institution_id)
        except Exception as exc:  # noqa: BLE001 - retried on the next pass
            log.warning("inbound %s: activity not logged yet: %s", row.id, exc)
            return 0
        with db.session() as session:
            session.execute(update(InboundMessage).where(InboundMessage.id == row.id)
                            .values(activity_id=activity["id"]))
        if row.attachments:
            store_attachments(db, row.id, acting.system.documents, activity["id"])
        return 1

    # a few at once: each is an RPC round trip and a transaction on its own account's chain
    return sum(eventlet.GreenPool(PENDING_CONCURRENCY).imap(log_one, rows))

def store_attachments(db, inbound_id: int, documents, activity_id) -> None:
    """The inbound message's attachments as documents of its debtor; the raw message is let
    go once each is stored or refused."""
    try:
        with db.session() as session:
            row = session.get(InboundMessage, inbound_id, with_for_update=True)
            if row is None or row.raw is None or row.debtor_id is None:
                return
            row.attachments = attachments.store_inbound(row, documents, activity_id)
            if all(a.get("version_id") or a.get("error") for a in row.attachments):
                row.raw = None
    except Exception as exc:  # noqa: BLE001 - the raw message stays; retried later
        log.warning("inbound %s: attachments not stored yet: %s", inbound_id, exc)
