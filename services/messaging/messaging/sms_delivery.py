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

The hand-over keeps its connections to the gateway alive (``sms._pools``), and delivery
reports are written apart from it, in batches (``ReportWriter``): a campaign brings one
report per message within milliseconds, and one transaction each (as before) took the
CPU and database the hand-over needed. Kannel gets its answer only once its report is
committed, so a crash loses none (Kannel calls again: ``http-request-retry``), and a
report that comes twice moves nothing the second time (states only move forward).
"""
from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import datetime, timedelta, timezone

import eventlet
from eventlet.event import Event
from nameko.web.handlers import HttpRequestHandler
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, TEXT, UUID
from werkzeug.wrappers import Response

from recaudo_common.db import Database, ServiceDatabase

from . import crypto, portal_link, sms
from .models import SmsMessage, SmsSettings

BATCH = 200
CONCURRENCY = 20
log = logging.getLogger(__name__)
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
            # a delivery report may have come first: its state stands; handed over, the
            # body needs no usable portal link any more
            session.execute(update(SmsMessage).where(SmsMessage.id.in_(sent)).values(
                attempts=SmsMessage.attempts + 1, last_error=None,
                body=portal_link.masked_sql(SmsMessage.body),
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
                # failed for good: no send will need its portal link either
                failed = session.execute(mine.where(SmsMessage.state == "queued").values(
                    attempts=attempts, state="failed", failed_at=done,
                    body=portal_link.masked_sql(SmsMessage.body),
                    last_error=str(outcome)[:2000]).returning(SmsMessage.__table__)).all()
                announce_campaign_outcomes(db, session, failed)
                if log is not None:
                    log.warning("sms %s failed: %s", row.uuid, outcome)
    return len(rows)


#: one statement for a batch of reports: each moves its message forward (a final state
#: stays), answering the ones it moved
_REPORTS = text("""
    UPDATE messaging.sms_messages m SET state = r.state,
        delivered_at = CASE WHEN r.state = 'delivered' THEN now() ELSE m.delivered_at END,
        failed_at = CASE WHEN r.state = 'failed' THEN now() ELSE m.failed_at END,
        last_error = CASE WHEN r.state = 'failed' THEN r.error ELSE m.last_error END
    FROM unnest(:ids, :states, :errors) AS r(uuid, state, error)
    WHERE m.uuid = r.uuid AND m.direction = 'outbound' AND m.state IN ('queued', 'sent')
    RETURNING m.*""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=False))),
                                    bindparam("states", type_=ARRAY(TEXT)),
                                    bindparam("errors", type_=ARRAY(TEXT)))


def record_reports(db, reports: list[tuple[str, int]]) -> set[str]:
    """Delivery reports (the outbound message's public id, Kannel's DLR ``status``) in one
    transaction, no row read and locked first; answers the ids that are our messages."""
    moving: dict[str, tuple[str, int]] = {}
    for public, status in reports:
        state = sms.DLR_STATES.get(status)
        if state and public not in moving:   # the first report of a message in the batch
            moving[public] = (state, status)
    publics = {public for public, _status in reports}
    with db.session() as session:
        ours = set()
        if moving:
            ids = list(moving)
            moved = session.execute(_REPORTS, {
                "ids": ids, "states": [moving[i][0] for i in ids],
                "errors": [f"La red informó que no se entregó (DLR {moving[i][1]})"
                           for i in ids]}).all()
            ours = {str(row.uuid) for row in moved}
            announce_campaign_outcomes(db, session, moved)
        rest = publics - ours
        if rest:
            ours |= {str(u) for u in session.execute(select(SmsMessage.uuid).where(
                SmsMessage.uuid.in_(rest), SmsMessage.direction == "outbound")).scalars()}
    return ours


def announce_campaign_outcomes(db, session, rows) -> None:
    """A campaign's SMS delivered, or failed for good, counts in the campaign's report:
    queues takes ``message_sent`` / ``message_failed`` for it as for an email."""
    events = []
    for row in rows:
        if row.campaign_id is None or row.state not in ("delivered", "failed"):
            continue
        common = {"message_uuid": str(row.uuid), "institution_id": row.institution_id,
                  "debtor_id": row.debtor_id, "account_id": row.account_id, "channel": "sms",
                  "campaign_id": row.campaign_id}
        if row.state == "delivered":
            events.append(("message_sent", {**common, "to_address": row.phone,
                                            "activity_id": row.activity_id,
                                            "attempts": row.attempts,
                                            "response": "delivered"}))
        else:
            events.append(("message_failed", {**common, "bounced": False,
                                              "reason": row.last_error or ""}))
    db.emit_many(session, events)


class ReportWriter:
    """Delivery reports queued in the process and written in batches: one green thread
    writes whatever waited while the previous batch was being written (nothing waits on
    a timer), and each caller is answered once its report is committed."""

    MAX = 500

    def __init__(self):
        self._waiting: list[tuple[str, int, Event]] = []
        self._writer = None

    def submit(self, db, public: str, status: int) -> Event:
        """Queue a report; the event answers whether ``public`` is ours once its report is
        written (or raises what the write raised: the gateway is answered 500 and calls
        again)."""
        done = Event()
        self._waiting.append((public, status, done))
        if self._writer is None:
            self._writer = eventlet.spawn(self._write, db)
        return done

    def _write(self, db) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.MAX], self._waiting[self.MAX:]
                try:
                    ours = record_reports(db, [(public, status) for public, status, _ in batch])
                except Exception as exc:   # noqa: BLE001 - every waiter gets it
                    for _public, _status, done in batch:
                        done.send_exception(exc)
                    continue
                for public, _status, done in batch:
                    done.send(public in ours)
        finally:
            self._writer = None


def kannel_answer(status: int, body: str, keep_alive: bool = False) -> Response:
    """An answer to the SMS gateway's callback. It closes the connection unless asked:
    Kannel keeps connections alive, and a report sent on one that a restarting messaging
    closed is lost unless Kannel retries it (``http-request-retry``, which the local
    Kannel sets and a production one must)."""
    headers = {} if keep_alive else {"Connection": "close"}
    return Response(body, status=status, headers=headers, mimetype="text/plain")


class DeliveryReports(HttpRequestHandler):
    """``GET /kannel/dlr?id=&status=``: a delivery report for one of our messages (the
    ``dlr-url`` the hand-over gave; the message's unguessable id authenticates it),
    answered in the web server's own green thread, with no worker: a campaign brings one
    per message, a worker's set-up cost more than the report's share of its batch, and
    the reports waiting for their batch's commit held the service's few workers (the
    hand-over's among them). Queued to the process's ``ReportWriter``; answered 200 once
    committed, 404 for an id not ours, 500 when the write failed (Kannel calls again).
    The decorated method is never called; it names the route in the service."""

    def setup(self):
        super().setup()
        self.database = next(d for d in self.container.dependencies if isinstance(d, Database))

    def handle_request(self, request):
        request.shallow = False
        try:
            public = str(uuidlib.UUID(request.args.get("id", "")))
            status = int(request.args.get("status", ""))
        except ValueError:
            return kannel_answer(400, "id and status expected\n")
        try:
            ours = WRITER.submit(ServiceDatabase(self.database), public, status).wait()
        except Exception:   # noqa: BLE001 - Kannel calls again
            log.exception("delivery report %s not written", public)
            return kannel_answer(500, "not written, try again\n", keep_alive=True)
        if not ours:
            return kannel_answer(404, "unknown message\n", keep_alive=True)
        return kannel_answer(200, "ok\n", keep_alive=True)


#: the process's delivery-report writer (its green thread serves every container's reports)
WRITER = ReportWriter()
delivery_reports = DeliveryReports.decorator
