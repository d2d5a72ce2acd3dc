"""Login, logout and "my account" in the web UI."""
from __future__ import annotations

from flask import Blueprint, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import InvalidInput, NotAuthenticated, Throttled

from .. import auth
from ..boundary import safe_next
from ..rpc import rpc
from .home import landing

bp = Blueprint("account", __name__)


def _safe_next(target: str | None, user: dict | None = None) -> str:
    return safe_next(target, landing(user or g.get("user")))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if g.user:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", login_csrf=auth.login_csrf_token(),
                               next=request.args.get("next", ""))
    if not auth.login_csrf_ok():
        return render_template("login.html", login_csrf=auth.login_csrf_token(),
                               next=request.form.get("next", ""),
                               error=_("La página expiró; intente de nuevo.")), 400
    username = request.form.get("username", "")
    try:
        with auth.anonymous_rpc() as proxy:
            opened = proxy.auth.login(username, request.form.get("password", ""),
                                      auth.client_address(),
                                      request.headers.get("User-Agent", "")[:300])
    except (NotAuthenticated, Throttled, InvalidInput) as exc:
        response = make_response(render_template(
            "login.html", login_csrf=auth.login_csrf_token(), next=request.form.get("next", ""),
            username=username, error=exc.message), 401)
        if isinstance(exc, Throttled):
            response.status_code = 429
            response.headers["Retry-After"] = str(exc.retry_after or 60)
        return response
    response = make_response(redirect(_safe_next(request.form.get("next"), opened.get("user"))))
    auth.set_session_cookie(response, opened["session_id"], opened["absolute_timeout"])
    return response


@bp.post("/logout")
@auth.login_required
def logout():
    with auth.anonymous_rpc() as proxy:
        proxy.auth.logout(g.session_id)
    auth.forget_current()
    response = make_response(redirect(url_for("account.login")))
    response.delete_cookie(auth.SESSION_COOKIE)
    return response


@bp.route("/cuenta", methods=["GET", "POST"])
@auth.login_required
def my_account():
    errors = {}
    if request.method == "POST":
        form = request.form
        try:
            with rpc() as proxy:
                if form.get("action") == "password":
                    proxy.auth.change_password({"current_password": form.get("current_password", ""),
                                                "new_password": form.get("new_password", "")},
                                               keep=auth.current_credential())
                else:
                    proxy.auth.update_me({"display_name": form.get("display_name", ""),
                                          "language": form.get("language", "es"),
                                          "time_zone": form.get("time_zone", "").strip() or None})
            done = "password" if form.get("action") == "password" else "profile"
            response = make_response(redirect(url_for("account.my_account", done=done)))
            if form.get("action") != "password":
                response.delete_cookie("lang")  # the saved preference now decides
            return response
        except InvalidInput as exc:
            errors = exc.fields
    with rpc() as proxy:
        me = proxy.auth.me()
    notices = {"password": _("Contraseña actualizada."), "profile": _("Datos actualizados.")}
    return render_template("account.html", me=me, errors=errors,
                           notice=notices.get(request.args.get("done"))), 422 if errors else 200
