"""Share links as their holders see them: ``/s/<token>``, no login.

The token in the address (and the link's password, if it has one) is the credential;
the documents service checks expiry, revocation, the password and its throttle, logs
every attempt with the holder's address, and answers the link's documents or a download
URL of a few minutes. After the right password the service's *grant* is kept in a
cookie limited to that link's path, so the downloads that follow need not ask again.
"""
from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Gone, NotAuthenticated, PermissionDenied, Throttled

from .. import auth, security
from . import error_pages
from ._common import debtor_screen_context

bp = Blueprint("share", __name__, url_prefix="/s")
bp.context_processor(debtor_screen_context)

GRANT_COOKIE = "recaudo_share_grant"
GRANT_SECONDS = 30 * 60


def _error(status: int, code: str, message: str):
    return render_template("documents/share_error.html", status=status, code=code,
                           message=message), status


error_pages.register(bp, _error)


def _resolve(token: str, **extra) -> dict:
    with auth.anonymous_rpc() as proxy:
        return proxy.documents.resolve_share_link({
            "token": token, "grant": request.cookies.get(GRANT_COOKIE),
            "address": auth.client_address(), **extra})


def _password_page(token: str, problem: str | None, status: int):
    return render_template("documents/share_password.html", token=token, problem=problem), status


@bp.route("/<token>", methods=["GET", "POST"])
def open_link(token: str):
    """The link's documents; its password form first when it has one."""
    password = request.form.get("password", "") if request.method == "POST" else None
    try:
        opened = _resolve(token, password=password or None)
    except NotAuthenticated:
        return _password_page(token, None, 401)
    except PermissionDenied:
        return _password_page(token, _("Contraseña incorrecta."), 403)
    except Throttled as throttled:
        response = make_response(_password_page(
            token, _("Demasiados intentos: espere unos minutos."), 429))
        response.headers["Retry-After"] = str(throttled.retry_after or 60)
        return response
    except Gone as gone:
        return _error(410, gone.code, _("Esta liga ya no es válida: venció o fue revocada."))
    response = make_response(render_template("documents/share.html", token=token, link=opened))
    if request.method == "POST" and opened.get("grant"):
        # the right password: the next clicks (downloads) carry the grant instead
        response.set_cookie(GRANT_COOKIE, opened["grant"], max_age=GRANT_SECONDS,
                            path=url_for(".open_link", token=token), httponly=True,
                            samesite="Lax", secure=security.served_over_tls())
    return response


@bp.get("/<token>/v/<int:version_id>")
def download(token: str, version_id: int):
    """A fresh short-lived download of one version within the link."""
    try:
        opened = _resolve(token, version_id=version_id)
    except NotAuthenticated:
        return redirect(url_for(".open_link", token=token))
    except Gone as gone:
        return _error(410, gone.code, _("Esta liga ya no es válida: venció o fue revocada."))
    return redirect(opened["download"]["url"])
