"""Who is making this request: web sessions (cookie) or API tokens (Bearer), and CSRF.

A credential is resolved by the auth service (one RPC), which answers the signed
identity the gateway then attaches to every service call; the answer is kept by this
process (``identity_cache``) until the auth service's ``access_changed`` event says to
forget it, so logging out, revoking or disabling takes effect everywhere within a
second. The gateway's checks here only shape the answer (redirect to the login page,
401); the services enforce.
"""
from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import abort, current_app, g, redirect, request, url_for

from recaudo_common.errors import InvalidInput, NotAuthenticated

from . import security
from .errors import error_body
from .identity_cache import IdentityCache, digest as identity_digest

SESSION_COOKIE = "recaudo_session"
#: double-submit cookie protecting the login form itself (there is no session yet)
LOGIN_CSRF_COOKIE = "recaudo_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
#: paths answered without resolving anyone
PUBLIC_PREFIXES = ("/static/", "/healthz", "/api/v1/openapi.json", "/api/v1/docs",
                   # the debtor portal resolves its own sessions (portal.py), never the staff's
                   "/mi-cuenta", "/api/v1/portal/")


def anonymous_rpc():
    """A proxy with no identity, for the auth entrypoints that establish one."""
    return current_app.extensions["recaudo.rpc"].proxy({"request_id": g.get("request_id")})


def client_address() -> str | None:
    """For throttling and the audit log (behind a trusted proxy, its X-Forwarded-For)."""
    return security.client_address()


def resolve_caller() -> None:
    """before_request: fill ``g.user``, ``g.identity_token`` and ``g.csrf_token``."""
    g.user = g.identity_token = g.csrf_token = None
    g.auth_kind = None
    if request.path.startswith(PUBLIC_PREFIXES):
        return None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error_body(401, "not_authenticated", "Encabezado Authorization inválido")
        try:
            resolved = _resolve("token", token.strip())
        except (NotAuthenticated, InvalidInput):
            return error_body(401, "not_authenticated", "Token inválido o expirado")
        g.auth_kind = "token"
        g.bearer_token = token.strip()
    else:
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            return None
        try:
            resolved = _resolve("session", session_id)
        except (NotAuthenticated, InvalidInput):
            g.clear_session_cookie = True
            return None
        g.auth_kind = "session"
        g.session_id = session_id
        g.csrf_token = resolved["csrf_token"]
    g.user = resolved["user"]
    g.identity_token = resolved["identity"]
    return None


def _resolve(kind: str, credential: str) -> dict:
    """The identity behind a session id or token: this process's cache, else auth."""
    cache = current_app.extensions["recaudo.identities"]
    resolved = cache.lookup(kind, credential)
    if resolved is not None:
        return resolved
    generation = cache.generation()
    with anonymous_rpc() as proxy:
        if kind == "token":
            resolved = proxy.auth.resolve_token(credential)
        else:
            resolved = proxy.auth.resolve_session(credential)
    cache.store(kind, credential, resolved, generation)
    return resolved


def current_credential() -> str | None:
    """The session id or bearer token of this request (a password change keeps it)."""
    return g.get("session_id") if g.get("auth_kind") == "session" else g.get("bearer_token")


def forget_current() -> None:
    """After a logout: this process stops trusting the credential at once (the others
    when auth's ``access_changed`` reaches them)."""
    credential = current_credential()
    if credential:
        current_app.extensions["recaudo.identities"].forget(
            {"credentials": [identity_digest(credential)], "user_ids": [], "everyone": False})


def check_csrf():
    """before_request: cookie-authenticated state changes must echo the session's token."""
    if request.method not in UNSAFE_METHODS or g.get("auth_kind") != "session":
        return None
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    if not hmac.compare_digest(sent, g.csrf_token or ""):
        return error_body(403, "csrf_failed",
                          "Falta o no es válido el token CSRF; recargue la página")
    return None


def finish(response):
    """after_request: forget a session cookie the auth service no longer accepts, and
    set the login form's CSRF cookie when one was minted."""
    if g.get("clear_session_cookie"):
        response.delete_cookie(SESSION_COOKIE)
    if g.get("new_login_csrf"):
        response.set_cookie(LOGIN_CSRF_COOKIE, g.new_login_csrf, httponly=True,
                            samesite="Strict", secure=security.served_over_tls())
    return response


def set_session_cookie(response, session_id: str, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=max_age, httponly=True,
                        samesite="Lax", secure=security.served_over_tls())


def login_csrf_token() -> str:
    """The login form's token: reuse the cookie's, or mint one (set after the request)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token:
        token = secrets.token_urlsafe(32)
        g.new_login_csrf = token
    return token


def login_csrf_ok() -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = request.form.get(CSRF_FIELD, "")
    return bool(cookie) and hmac.compare_digest(cookie, sent)


def login_required(view):
    """UI views: anonymous visitors go to the login page and come back after."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("user") is None:
            return redirect(url_for("account.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def permission_required(permission: str):
    """UI views: hide screens the user's profile does not allow (the services enforce)."""

    def decorate(view):
        @wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            if permission not in g.user["permissions"]:
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def require_api_user():
    """API blueprints' before_request: no credentials, 401 with the JSON error body."""
    if g.get("user") is None:
        return error_body(401, "not_authenticated", "Se requiere autenticación")
    return None


def api_auth_required(view):
    """The same for single API views of a blueprint that also has public ones."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        return require_api_user() or view(*args, **kwargs)

    return wrapper


def init_app(app) -> None:
    cfg = app.extensions["recaudo.settings"]
    app.extensions["recaudo.identities"] = IdentityCache(
        cfg.amqp_uri, cfg.identity_cache_seconds, cfg.identity_cache_size)
    app.before_request(resolve_caller)
    app.before_request(check_csrf)
    app.after_request(finish)

    @app.context_processor
    def current_user():
        user = g.get("user")
        return {"current_user": user, "csrf_token": g.get("csrf_token"),
                "can": (lambda perm: bool(user) and perm in user["permissions"])}
