"""SMS: how long a text is in segments, and handing the queued ones to the gateway.

A text that fits the GSM 03.38 alphabet goes as GSM-7: 160 characters in one segment,
153 per segment once concatenated (the UDH takes 7); the extension characters (``^{}[]~|\\€``
and form feed) take two septets each. Anything else (an emoji, most accented capitals)
makes the whole message UCS-2: 70 characters alone, 67 per segment, counted in UTF-16
code units (an emoji is two).

Delivery goes over Kannel's HTTP ``sendsms`` interface with a ``dlr-url`` back to
messaging's callback endpoint (``/kannel/dlr``; see service.py), which Kannel calls with
the DLR status: 1 delivered, 2 failed, 4 buffered, 8 accepted by the SMSC, 16 refused by it.
``sms_delivery`` hands the due messages over a batch at a time (the service's timer calls it).

Each process keeps its connections to a gateway alive (``_pools``: one pool per gateway
host, at most ``POOL_SIZE`` connections): opening a TCP connection per message cost the
gateway and messaging more than the message itself. A request is never sent twice by the
pool (no retry once it may have reached the gateway): a lost answer is a ``Temporary``
and the delivery timer tries again after its backoff.
"""
from __future__ import annotations

import logging
import threading
import urllib.parse
from datetime import timedelta

import urllib3

from .http_pools import KeptHTTPConnection, KeptHTTPSConnection

log = logging.getLogger(__name__)

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

MAX_ATTEMPTS = 5
BACKOFF = 15.0
BACKOFF_MAX = 900.0
TIMEOUT = 10.0
#: kept-alive connections per gateway host and process (the hand-over's concurrency)
POOL_SIZE = 20
#: a connection the gateway closed while idle is found before use and replaced; once the
#: request may have gone out, it is not sent again
_RETRY = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=False)
_pools: dict[tuple, urllib3.connectionpool.HTTPConnectionPool] = {}
_pools_lock = threading.Lock()

#: Kannel's DLR status -> our state (8 and 4 say nothing new: the message stays ``sent``)
DLR_STATES = {1: "delivered", 2: "failed", 16: "failed"}
#: what we ask Kannel to report: delivered, failed, refused by the SMSC (buffered and
#: accepted by the SMSC would change nothing, and cost messaging a callback each)
DLR_MASK = 19


def segments(text: str) -> dict:
    """``{"encoding": "gsm7"|"ucs2", "units": n, "segments": n, "per_segment": n}``."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, multi, encoding = 160, 153, "gsm7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "ucs2"
    count = 1 if units <= single else -(-units // multi)
    return {"encoding": encoding, "units": units, "segments": count,
            "per_segment": single if count == 1 else multi}


def opt_out_words(setting: str) -> frozenset[str]:
    return frozenset(w.strip().upper() for w in (setting or "").split(",") if w.strip())


def is_opt_out(text: str, words: frozenset[str]) -> bool:
    """An opt-out is one of the words as the whole message (case, spaces and a final
    period aside): "baja", "STOP." — not "no me den de baja"."""
    return text.strip().rstrip(".!").strip().upper() in words


class Temporary(Exception):
    """The gateway did not take it now (unreachable, 5xx, queue full): try again later."""


class Permanent(Exception):
    """The gateway refused the message for good (4xx: bad number, bad credentials)."""


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF * 2 ** (attempt - 1), BACKOFF_MAX))


def _pool(url: str):
    """The process's kept-alive connections to ``url``'s host."""
    parts = urllib.parse.urlsplit(url)
    key = (parts.scheme, parts.hostname, parts.port)
    pool = _pools.get(key)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = urllib3.connection_from_url(
                    url, maxsize=POOL_SIZE, block=True, retries=_RETRY,
                    timeout=urllib3.Timeout(connect=TIMEOUT, read=TIMEOUT))
                pool.ConnectionCls = KeptHTTPSConnection if parts.scheme == "https" \
                    else KeptHTTPConnection
    return pool


def close_pools() -> None:
    """Drop every kept connection (tests; a gateway whose address changed)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


def send(gateway_url: str, username: str, password: str, sender: str, to: str, text: str,
         encoding: str, dlr_url: str) -> str:
    """Hand one message to the gateway; answers its reply ("0: Accepted for delivery")."""
    params = {"username": username, "password": password, "from": sender, "to": to,
              "dlr-mask": str(DLR_MASK), "dlr-url": dlr_url, "charset": "UTF-8"}
    if encoding == "ucs2":
        params.update(coding="2", text=text.encode("utf-16-be"), charset="UTF-16BE")
    else:
        params.update(text=text.encode("utf-8"))
    url = f"{gateway_url.rstrip('/')}?{urllib.parse.urlencode(params)}"
    try:
        parts = urllib.parse.urlsplit(url)
        response = _pool(url).urlopen("GET", f"{parts.path or '/'}?{parts.query}",
                                      pool_timeout=TIMEOUT)
    except urllib3.exceptions.HTTPError as exc:
        raise Temporary(str(getattr(exc, "reason", None) or exc)) from None
    except OSError as exc:
        raise Temporary(str(exc)) from None
    answer = response.data[:500].decode("utf-8", "replace").strip()
    if 200 <= response.status < 300:
        return answer
    if 400 <= response.status < 500 and response.status not in (408, 429):
        raise Permanent(f"{response.status} {answer}")
    raise Temporary(f"{response.status} {answer}")
