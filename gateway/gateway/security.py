"""The web's security basics, once for every answer: who the client is behind a trusted
proxy, whether the site is served over TLS, and the security headers.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the proxies named in
``RECAUDO_TRUSTED_PROXIES`` (none by default): anyone else could write them to pick the
address the login throttle counts, or to pass for TLS.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

from flask import current_app, g, request

#: every page, API answer, static file and error: scripts only from this site (no inline
#: script, no eval); styles may be inline (htmx swaps and Chart.js set style attributes,
#: mail previews carry their own); never framed; forms post only here
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'{store}; "
       "frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")
HSTS = "max-age=31536000"


@lru_cache(maxsize=8)
def _networks(setting: str) -> tuple:
    networks = []
    for item in setting.replace(";", ",").split(","):
        if item.strip():
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
    return tuple(networks)


def _settings():
    return current_app.extensions["recaudo.settings"]


def _trusted(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(_settings().trusted_proxies))


def _from_trusted_proxy() -> bool:
    return _trusted(request.remote_addr)


def client_address() -> str | None:
    """The client's address: the connecting one, or, when that is a trusted proxy, the
    nearest address in ``X-Forwarded-For`` that is not one (read from the right: only
    the part our own proxies appended can be believed)."""
    address = request.remote_addr
    if not _from_trusted_proxy():
        return address
    hops = [hop.strip() for value in request.headers.getlist("X-Forwarded-For")
            for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break               # garbage: stop at the last address we could believe
        address = hop
        if not _trusted(hop):
            break
    return address


def served_over_tls() -> bool:
    """TLS to the gateway itself, a public URL in https, or a trusted proxy saying so."""
    if request.is_secure or _settings().public_url.lower().startswith("https://"):
        return True
    if _from_trusted_proxy():
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        return proto == "https"
    return False


@lru_cache(maxsize=4)
def _policy(store_endpoint: str) -> str:
    """The CSP, letting the browser reach the object store (uploads go there directly)."""
    parts = urlsplit(store_endpoint)
    store = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return CSP.format(store=store)


def content_security_policy() -> str:
    cfg = _settings()
    return _policy(cfg.s3_public_endpoint or cfg.s3_endpoint)


def add_headers(response):
    """after_request: the security headers on every answer."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy())
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    if served_over_tls():
        headers["Strict-Transport-Security"] = HSTS
    # someone's own data (or their new session) must not stay in a cache
    if g.get("user") is not None or "Set-Cookie" in headers:
        headers["Cache-Control"] = "no-store"
        headers.pop("Expires", None)
    if response.status_code == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = str(g.get("retry_after") or 60)
    return response


def init_app(app) -> None:
    _networks(app.extensions["recaudo.settings"].trusted_proxies)   # a bad setting fails now
    app.after_request(add_headers)
