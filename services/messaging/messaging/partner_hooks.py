"""Partners' webhooks: an institution's integration user subscribes an HTTPS endpoint to
events of its accounts; each event becomes one delivery per subscription, signed, sent in
order per (subscription, account), retried with backoff for 24 hours, logged attempt by
attempt.

Deliveries are made from the events the services wrote to their outbox, so a change that
rolled back sends nothing. The delivery timer fires on every instance; each delivery is
done once across them: the timer claims the head of each account's chain
``FOR UPDATE SKIP LOCKED`` and leases it (``leased_until``) before sending outside the
transaction, so no other instance takes it, nor the next of its chain, until it is settled;
a crashed instance's lease runs out and the delivery is sent again (partners dedupe by
event id). Sends run on a pool of green threads, each with its own timeout: an endpoint
that hangs holds one thread, never the others.

No server-side request forgery: only ``https`` URLs, whose host resolves only to public
addresses (never private, link-local, loopback, multicast or reserved; loopback only with
``RECAUDO_WEBHOOK_ALLOW_LOOPBACK``, for tests), checked when subscribing and again on
every connection, against the address actually connected to (the name may resolve
elsewhere later); redirects are not followed.

Connections are kept alive per endpoint (``_pools``: scheme, host, port and CA bundle),
so a partner receiving a stream of events pays one TLS handshake, not one per event.
Each instance sends as soon as an event is recorded (after ``GRACE_SECONDS``, for the
order) or a send settles (``wake``, which cuts short the delivery timer's wait); the timer
alone finds retries coming due and leases run out.

Signature, as partners verify it: ``X-Recaudo-Signature: v1=<hex HMAC-SHA256 of
"<X-Recaudo-Timestamp>.<X-Recaudo-Event-Id>.<body>" under the subscription's secret>``.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

import certifi
import eventlet
import urllib3
from eventlet.queue import Empty, Full, LightQueue
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from recaudo_common.config import settings
from recaudo_common.errors import Conflict, InvalidInput, NotFound
from recaudo_common.sealing import seal, unseal

from . import delivery as smtp_delivery
from . import parsing
from .http_pools import KeptHTTPSConnection
from .models import Mailbox, WebhookAttempt, WebhookDelivery, WebhookSubscription

log = logging.getLogger(__name__)

SEAL_LABEL = b"recaudo messaging partner webhook secrets v1"
#: deliveries are retried this long after the event, then given up
RETRY_FOR = timedelta(hours=24)
MAX_DELAY_SECONDS = 3600
#: failed attempts in a row after which a subscription is paused (and its owner told)
PAUSE_AFTER = 20
#: green threads sending at once per instance
POOL_SIZE = 32
#: how long a recorded delivery waits before it may be sent: the handlers of one queue run
#: side by side, and an event's handler may commit after a later event's (seen: 34 ms on
#: a loaded machine); sending at once would put the later first on its account's chain
GRACE_SECONDS = 0.15
_pool = eventlet.GreenPool(POOL_SIZE)
#: kept-alive connections per endpoint (as many as there are senders: none is made twice)
KEEP_PER_ENDPOINT = POOL_SIZE


# --- the endpoint's address ---------------------------------------------------------------------

def _allowed_address(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return settings().webhook_allow_loopback
    return ip.is_global and not ip.is_multicast


PRIVATE = "Resuelve a una dirección privada o reservada"


def url_problem(url: str) -> str | None:
    """Why ``url`` may not be called by its form: not https, no host, credentials in it."""
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError:
        return "Dirección inválida"
    if parts.scheme != "https":
        return "Sólo direcciones https://"
    if not parts.hostname or parts.username or parts.password:
        return "Dirección inválida"
    return None


def address_problem(url: str) -> str | None:
    """Why ``url`` may not be called, or None: its form (``url_problem``), or a host
    resolving to an address that is not public."""
    if problem := url_problem(url):
        return problem
    parts = urlsplit(url)
    port = parts.port or 443
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return "El nombre no resuelve"
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    if not addresses or not all(_allowed_address(ip) for ip in addresses):
        return PRIVATE
    return None


def check_url(url: str) -> None:
    if problem := address_problem(url):
        raise InvalidInput("Dirección no permitida", {"url": [problem]})


# --- subscriptions ---------------------------------------------------------------------------------

def subscription_out(row: WebhookSubscription, secret: str | None = None) -> dict:
    out = {"id": row.id, "institution_id": row.institution_id, "url": row.url,
           "events": list(row.events), "contact_email": row.contact_email, "active": row.active,
           "paused_at": row.paused_at, "paused_reason": row.paused_reason,
           "failures_in_row": row.failures_in_row, "created_at": row.created_at}
    if secret is not None:
        out["secret"] = secret
    return out


def visible(session, identity, subscription_id: int, lock: bool = False) -> WebhookSubscription:
    query = select(WebhookSubscription).where(WebhookSubscription.id == subscription_id)
    row = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if row is None or not identity.may_access_institution(row.institution_id):
        raise NotFound("Suscripción no encontrada")
    return row


def list_subscriptions(session, identity) -> list[dict]:
    query = select(WebhookSubscription).order_by(WebhookSubscription.id)
    if identity.institutions is not None:
        query = query.where(WebhookSubscription.institution_id.in_(identity.institutions or (-1,)))
    return [subscription_out(r) for r in session.execute(query).scalars()]


def create(session, identity, data: dict) -> dict:
    """The subscription and its signing secret, shown this once."""
    check_url(data["url"])
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = WebhookSubscription(institution_id=data["institution_id"], owner_id=identity.user_id,
                              contact_email=parsing.clean_address(data["contact_email"],
                                                                  "contact_email"),
                              url=data["url"], events=sorted(set(data["events"])),
                              secret_sealed=seal(SEAL_LABEL, secret))
    session.add(row)
    session.flush()
    return subscription_out(row, secret)


def change(session, identity, subscription_id: int, data: dict) -> dict:
    """URL, events, contact or active; activating a paused subscription resumes it."""
    row = visible(session, identity, subscription_id, lock=True)
    if "url" in data:
        check_url(data["url"])
        row.url = data["url"]
    if "events" in data:
        row.events = sorted(set(data["events"]))
    if "contact_email" in data:
        row.contact_email = parsing.clean_address(data["contact_email"], "contact_email")
    if "active" in data:
        row.active = data["active"]
        if data["active"] and row.paused_at is not None:
            row.paused_at, row.paused_reason, row.failures_in_row = None, "", 0
    session.flush()
    return subscription_out(row)


def remove(session, identity, subscription_id: int) -> None:
    session.delete(visible(session, identity, subscription_id, lock=True))


def deliveries_page(session, identity, subscription_id: int, page: int, per_page: int) -> dict:
    """The delivery log, newest first, each delivery with its attempts."""
    visible(session, identity, subscription_id)
    total = session.execute(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.subscription_id == subscription_id)).scalar_one()
    rows = session.execute(select(WebhookDelivery).where(
        WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc()).offset((page - 1) * per_page).limit(per_page)).scalars().all()
    attempts: dict[int, list] = {}
    for a in session.execute(select(WebhookAttempt).where(
            WebhookAttempt.delivery_id.in_([r.id for r in rows] or [-1]))
            .order_by(WebhookAttempt.id)).scalars():
        attempts.setdefault(a.delivery_id, []).append(
            {"attempted_at": a.attempted_at, "status_code": a.status_code, "error": a.error,
             "latency_ms": a.latency_ms})
    return {"items": [delivery_out(r, attempts.get(r.id, [])) for r in rows], "total": total,
            "page": page, "per_page": per_page}


def delivery_out(row: WebhookDelivery, attempts=None) -> dict:
    return {"id": row.id, "subscription_id": row.subscription_id, "event_id": str(row.event_id),
            "event_type": row.event_type, "account_id": row.account_id,
            "occurred_at": row.occurred_at, "state": row.state, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at if row.state == "pending" else None,
            "delivered_at": row.delivered_at, "last_status_code": row.last_status_code,
            "last_error": row.last_error, "last_latency_ms": row.last_latency_ms,
            "log": attempts or []}


def send_again(session, identity, delivery_id: int) -> dict:
    """"Enviar de nuevo": the delivery is pending again, now, behind nothing of its chain
    but what came before it."""
    row = session.execute(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotFound("Entrega no encontrada")
    visible(session, identity, row.subscription_id)
    if row.state == "pending" and row.leased_until and row.leased_until > _now():
        raise Conflict("Se está enviando ahora", {"state": ["Enviándose"]})
    row.state, row.next_attempt_at, row.leased_until = "pending", _now(), None
    row.created_at = _now()   # another 24 hours of retries
    session.flush()
    return delivery_out(row)


# --- events become deliveries ------------------------------------------------------------------

def record(session, event_type: str, payload: dict) -> int:
    """One pending delivery per subscription of the event's institution wanting it
    (paused ones too: they get them when resumed), made before the event happened (a
    backlog of older events does not reach a new subscription). Returns how many."""
    occurred = datetime.fromisoformat(str(payload["occurred_at"])) \
        if payload.get("occurred_at") else _now()
    subscriptions = session.execute(select(WebhookSubscription.id).where(
        WebhookSubscription.institution_id == payload["institution_id"],
        WebhookSubscription.active,
        WebhookSubscription.created_at <= occurred,
        WebhookSubscription.events.contains([event_type]))).scalars().all()
    if not subscriptions:
        return 0
    body = {k: v for k, v in payload.items() if k not in ("event_id", "occurred_at")}
    rows = [{"subscription_id": s, "event_id": str(payload["event_id"]), "event_type": event_type,
             "account_id": payload["account_id"], "occurred_at": occurred, "payload": body}
            for s in subscriptions]
    session.execute(insert(WebhookDelivery).values(rows).on_conflict_do_nothing())
    return len(rows)


# --- sending --------------------------------------------------------------------------------------

#: the head of each (subscription, account) chain - its earliest pending event, by when it
#: happened (events of several services reach messaging in any order) - when due, recorded
#: at least GRACE ago, and no other delivery of its chain is out (one in flight per chain)
_CLAIM = text("""
    WITH heads AS (
        SELECT DISTINCT ON (d.subscription_id, d.account_id) d.id
        FROM messaging.webhook_deliveries d
        JOIN messaging.webhook_subscriptions s ON s.id = d.subscription_id
             AND s.active AND s.paused_at IS NULL
        WHERE d.state = 'pending'
        ORDER BY d.subscription_id, d.account_id, d.occurred_at, d.id)
    SELECT d.id FROM messaging.webhook_deliveries d JOIN heads h ON h.id = d.id
    WHERE d.state = 'pending' AND d.next_attempt_at <= now()
      AND d.created_at <= now() - make_interval(secs => :grace)
      AND (d.leased_until IS NULL OR d.leased_until < now())
      AND NOT EXISTS (SELECT 1 FROM messaging.webhook_deliveries x
                      WHERE x.subscription_id = d.subscription_id
                        AND x.account_id = d.account_id AND x.state = 'pending'
                        AND x.id <> d.id AND x.leased_until >= now())
    ORDER BY d.next_attempt_at, d.id LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED""")


def claim(session, limit: int) -> list[dict]:
    """Lease up to ``limit`` due heads of their chains (committed with the session)."""
    ids = session.execute(_CLAIM, {"limit": limit, "grace": GRACE_SECONDS}).scalars().all()
    if not ids:
        return []
    lease = timedelta(seconds=settings().webhook_timeout_seconds * 2 + 30)
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                    .values(leased_until=func.now() + lease))
    rows = session.execute(
        select(WebhookDelivery, WebhookSubscription.url, WebhookSubscription.secret_sealed)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.id.in_(ids)).order_by(WebhookDelivery.id)).all()
    return [{"id": d.id, "url": url, "secret": unseal(SEAL_LABEL, sealed),
             "event_id": str(d.event_id), "body": body(d), "attempt": d.attempts + 1}
            for d, url, sealed in rows]


def body(row: WebhookDelivery) -> str:
    occurred = row.occurred_at.isoformat() if isinstance(row.occurred_at, datetime) \
        else str(row.occurred_at)
    return json.dumps({"id": str(row.event_id), "type": row.event_type, "occurred_at": occurred,
                       "institution_id": row.payload.get("institution_id"),
                       "account_id": row.account_id, "data": row.payload},
                      separators=(",", ":"), sort_keys=True, default=str)


def signature(secret: str, timestamp: str, event_id: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{event_id}.{payload}".encode(), hashlib.sha256)
    return "v1=" + mac.hexdigest()


class Refused(urllib3.exceptions.NewConnectionError):
    """The endpoint's name led to an address webhooks may not reach."""


class _GuardedConnection(KeptHTTPSConnection):
    """A TLS connection refusing, before a byte is sent, a peer that is not public: the
    check is on the address connected to, so a name re-resolved elsewhere is caught."""

    def _new_conn(self):
        sock = super()._new_conn()
        try:
            peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
        except (OSError, ValueError):
            peer = None
        if peer is None or not _allowed_address(peer):
            sock.close()
            raise Refused(self, PRIVATE)
        return sock


class _EndpointPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedConnection


_pools: dict[tuple, _EndpointPool] = {}
#: a connection the partner closed while idle is replaced; a request that may have gone
#: out is not sent again here (the delivery's retry does it, with its backoff)
_RETRY = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=False)


def _endpoint(url: str) -> _EndpointPool:
    parts = urlsplit(url)
    bundle = settings().webhook_ca_bundle or certifi.where()
    key = (parts.hostname, parts.port or 443, bundle, settings().webhook_allow_loopback)
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = _EndpointPool(
            parts.hostname, parts.port or 443, maxsize=KEEP_PER_ENDPOINT, block=False,
            retries=_RETRY, cert_reqs="CERT_REQUIRED", ca_certs=bundle)
    return pool


def close_connections() -> None:
    """Drop every kept connection (tests)."""
    for pool in _pools.values():
        pool.close()
    _pools.clear()


def send(job: dict) -> dict:
    """POST one delivery on a kept connection to its endpoint; its outcome (status code or
    error, latency). Never raises."""
    started = time.monotonic()
    outcome = {"status_code": None, "error": ""}
    problem = url_problem(job["url"])
    if problem:
        outcome["error"] = problem
    elif not job["secret"]:
        outcome["error"] = "Secreto ilegible (¿cambió la llave?)"
    else:
        stamp = str(int(time.time()))
        timeout = settings().webhook_timeout_seconds
        headers = {"Content-Type": "application/json", "User-Agent": "Recaudo-Webhooks/1",
                   "X-Recaudo-Event-Id": job["event_id"], "X-Recaudo-Timestamp": stamp,
                   "X-Recaudo-Delivery-Attempt": str(job["attempt"]),
                   "X-Recaudo-Signature": signature(job["secret"], stamp, job["event_id"],
                                                    job["body"])}
        try:
            with eventlet.Timeout(timeout + 1):   # the whole exchange, a trickle included
                target = urlsplit(job["url"])
                answer = _endpoint(job["url"]).urlopen(
                    "POST", (target.path or "/") + (f"?{target.query}" if target.query else ""),
                    body=job["body"].encode(), headers=headers,
                    timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
                    redirect=False)
            outcome["status_code"] = answer.status
            if not 200 <= answer.status < 300:
                outcome["error"] = f"HTTP {answer.status}"
        except (eventlet.Timeout, urllib3.exceptions.TimeoutError):
            outcome["error"] = "Sin respuesta a tiempo"
        except Refused:
            outcome["error"] = PRIVATE
        except urllib3.exceptions.MaxRetryError as exc:
            outcome["error"] = _failure(exc.reason)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            outcome["error"] = _failure(exc)
    outcome["latency_ms"] = int((time.monotonic() - started) * 1000)
    return outcome


def _failure(exc) -> str:
    if isinstance(exc, Refused):
        return PRIVATE
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "Sin respuesta a tiempo"
    return (type(exc).__name__ + ": " + str(exc))[:300]


def settle(session, delivery_id: int, outcome: dict) -> WebhookSubscription | None:
    """Write the attempt's outcome; the subscription when this attempt paused it."""
    row = session.execute(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                          .with_for_update()).scalar_one()
    ok = not outcome["error"]
    session.add(WebhookAttempt(delivery_id=row.id, status_code=outcome["status_code"],
                               error=outcome["error"][:300], latency_ms=outcome["latency_ms"]))
    row.attempts += 1
    row.leased_until = None
    row.last_status_code, row.last_error = outcome["status_code"], outcome["error"][:300]
    row.last_latency_ms = outcome["latency_ms"]
    now = _now()
    if ok:
        row.state, row.delivered_at = "delivered", now
        # the subscription's row is locked only when there is something to reset: the
        # senders of one endpoint do not queue on it
        session.execute(update(WebhookSubscription).where(
            WebhookSubscription.id == row.subscription_id,
            WebhookSubscription.failures_in_row != 0).values(failures_in_row=0))
        return None
    subscription = session.execute(select(WebhookSubscription).where(
        WebhookSubscription.id == row.subscription_id).with_for_update()).scalar_one()
    delay = min(settings().webhook_retry_base_seconds * 2 ** (row.attempts - 1), MAX_DELAY_SECONDS)
    subscription.failures_in_row += 1
    if now + timedelta(seconds=delay) > row.created_at + RETRY_FOR:
        row.state = "failed"       # given up: the next of its chain goes on
    else:
        row.next_attempt_at = now + timedelta(seconds=delay)
    if subscription.paused_at is None and (subscription.failures_in_row >= PAUSE_AFTER
                                           or row.state == "failed"):
        subscription.paused_at = now
        subscription.paused_reason = (f"{subscription.failures_in_row} intentos fallidos "
                                      f"seguidos; el último: {row.last_error}")[:300]
        return subscription
    return None


_ready = LightQueue(maxsize=1)


def wake_after_grace() -> None:
    """A delivery was recorded: sendable once ``GRACE_SECONDS`` have passed."""
    eventlet.spawn_after(GRACE_SECONDS, wake)


def wake() -> None:
    """Something may be sendable now (a recorded delivery's grace over, a send settled):
    the delivery timer's wait ends (wakes coalesce: one claim serves them all)."""
    try:
        _ready.put_nowait(True)
    except Full:
        pass


def wait_for_work(seconds: float) -> None:
    """Until ``wake`` or ``seconds``."""
    try:
        _ready.get(timeout=seconds)
    except Empty:
        pass


def free_senders() -> int:
    return _pool.free()


def spawn(work, *args) -> None:
    _pool.spawn_n(work, *args)


def wait_all() -> None:
    """Tests: until every send in flight is settled."""
    _pool.waitall()


def notice(session, subscription: WebhookSubscription) -> tuple[Mailbox, EmailMessage] | None:
    """The email telling a paused subscription's owner, from the institution's first
    active mailbox (None when it has none: the pause is still shown in the API)."""
    mailbox = session.execute(select(Mailbox).where(
        Mailbox.institution_id == subscription.institution_id, Mailbox.active)
        .order_by(Mailbox.id).limit(1)).scalar_one_or_none()
    if mailbox is None:
        return None
    session.expunge(mailbox)
    msg = EmailMessage()
    msg["From"] = parsing.format_address(mailbox.name, mailbox.address)
    msg["To"] = subscription.contact_email
    msg["Subject"] = f"Recaudo: webhook {subscription.id} en pausa"
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid(domain=mailbox.address.rsplit("@", 1)[1])
    msg.set_content(
        f"La suscripción {subscription.id} ({subscription.url}) quedó en pausa: "
        f"{subscription.paused_reason}.\nLos eventos se guardan; al reactivarla se envían.\n\n"
        f"Subscription {subscription.id} ({subscription.url}) was paused after repeated "
        f"failures. Events are kept and sent once it is active again.\n")
    return mailbox, msg


def mail_notice(mailbox, msg) -> None:
    try:
        smtp_delivery.send(mailbox, msg)
    except (smtp_delivery.Temporary, smtp_delivery.Permanent) as exc:
        log.warning("webhook pause notice to %s not sent: %s", msg["To"], exc)


def _now() -> datetime:
    return datetime.now(timezone.utc)
