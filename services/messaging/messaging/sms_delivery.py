"""Handing queued SMS to the gateway, a batch at a time, without holding row locks while
the gateway answers.

A batch is claimed in a short transaction (the due rows locked SKIP LOCKED - instances
share the queue - and their next attempt pushed ``CLAIM`` ahead, so no other instance takes
them meanwhile, and a crashed one's are taken again after it), handed over ``CONCURRENCY``
at once with no transaction open, and the outcomes written in one more. Holding the locks
through the hand-over (as before) made every delivery report of the batch - Kannel calls
back within milliseconds - wait for the whole batch, each waiting report holding one of
messaging's workers: at a campaign's pace the reports took the workers the delivery timer
needed, and the campaign went out at 20-35 messages/s instead of hundreds
(tests/perf/test_bench_compliance.py). A report that arrives before its outcome is written
wins: the outcome only moves a message that is still ``queued``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import eventlet
from sqlalchemy import exists, func, select, update

from . import crypto, sms
from .models import SmsMessage, SmsSettings

BATCH = 200
CONCURRENCY = 20
#: how long a claimed batch is kept from the other instances (the gateway times out first)
CLAIM = timedelta(seconds=max(60, 4 * sms.TIMEOUT))


def deliver_batch(db, callback_url: str, limit: int = BATCH, log=None) -> int:
    """Claim up to ``limit`` due messages, hand them to their institution's gateway and
    record each outcome; answers how many were claimed."""
    now = datetime.now(timezone.utc)
    with db.session() as session:
        rows = session.execute(select(
            SmsMessage.id, SmsMessage.uuid, SmsMessage.institution_id, SmsMessage.phone,
            SmsMessage.body, SmsMessage.encoding, SmsMessage.attempts).where(
            SmsMessage.state == "queued", SmsMessage.next_attempt_at <= func.now())
            .order_by(SmsMessage.next_attempt_at, SmsMessage.id).limit(limit)
            .with_for_update(skip_locked=True)).all()
        if not rows:
            return 0
        session.execute(update(SmsMessage).where(SmsMessage.id.in_([r.id for r in rows]))
                        .values(next_attempt_at=now + CLAIM))
        configs = {c.institution_id: (c.active, c.gateway_url, c.username,
                                      crypto.decrypt(c.password), c.sender_id)
                   for c in session.execute(select(SmsSettings).where(
                       SmsSettings.institution_id.in_({r.institution_id for r in rows})))
                   .scalars()}
    callback = callback_url.rstrip("/")

    def hand_over(row):
        config = configs.get(row.institution_id)
        if config is None or not config[0]:
            return row, sms.Permanent("La institución ya no tiene SMS configurado")
        _active, url, username, password, sender = config
        try:
            return row, sms.send(url, username, password, sender, row.phone, row.body,
                                 row.encoding, f"{callback}/kannel/dlr?id={row.uuid}&status=%d")
        except (sms.Temporary, sms.Permanent) as exc:
            return row, exc

    outcomes = list(eventlet.GreenPool(CONCURRENCY).imap(hand_over, rows))
    done = datetime.now(timezone.utc)
    sent = [row.id for row, outcome in outcomes if not isinstance(outcome, Exception)]
    with db.session() as session:
        if sent:
            # a delivery report may have come first: its state stands
            session.execute(update(SmsMessage).where(SmsMessage.id.in_(sent)).values(
                attempts=SmsMessage.attempts + 1, last_error=None,
                sent_at=func.coalesce(SmsMessage.sent_at, done)))
            session.execute(update(SmsMessage).where(
                SmsMessage.id.in_(sent), SmsMessage.state == "queued").values(state="sent"))
        for row, outcome in outcomes:
            if not isinstance(outcome, Exception):
                continue
            attempts = row.attempts + 1
            mine = update(SmsMessage).where(SmsMessage.id == row.id)
            if isinstance(outcome, sms.Temporary) and attempts < sms.MAX_ATTEMPTS:
                session.execute(mine.values(attempts=attempts, last_error=str(outcome)[:2000],
                                            next_attempt_at=done + sms.backoff(attempts)))
            else:
                session.execute(mine.where(SmsMessage.state == "queued").values(
                    attempts=attempts, state="failed", failed_at=done,
                    last_error=str(outcome)[:2000]))
                if log is not None:
                    log.warning("sms %s failed: %s", row.uuid, outcome)
    return len(rows)


def record_report(db, public: str, status: int) -> bool:
    """A delivery report (Kannel's DLR ``status``) for the outbound message ``public``:
    one statement moving it forward (a state already final stays), no row read and locked
    first - under a campaign, thousands arrive at once. Answers whether the message is ours."""
    state = sms.DLR_STATES.get(status)
    ours = (SmsMessage.uuid == public, SmsMessage.direction == "outbound")
    with db.session() as session:
        if state:
            now = datetime.now(timezone.utc)
            values = {"state": state}
            if state == "delivered":
                values["delivered_at"] = now
            else:
                values.update(failed_at=now,
                              last_error=f"La red informó que no se entregó (DLR {status})")
            moved = session.execute(update(SmsMessage).where(
                *ours, SmsMessage.state.in_(("queued", "sent"))).values(**values)
                .returning(SmsMessage.id)).first()
            if moved is not None:
                return True
        return session.execute(select(exists().where(*ours))).scalar()
