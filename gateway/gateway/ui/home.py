"""The web UI shell: home page, language switch, system status fragment."""
from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for

from ..boundary import safe_next
from ..health import check_services
from ..i18n import COOKIE, LANGUAGES
from ..rpc import rpc

bp = Blueprint("ui", __name__)

ONE_YEAR = 365 * 24 * 3600


def landing(user: dict | None) -> str:
    """Where a user starts: a creditor on their portal, everyone else on the home page."""
    if user and user.get("creditor") and "dashboards_ui.portal" in current_app.view_functions:
        return url_for("dashboards_ui.portal")
    return url_for("ui.home")


@bp.get("/")
def home():
    """The home page; a creditor's home is their portal; a collector's shows what waits in
    their queues and why (the pull's outlook), so it is never a dead end at any hour."""
    user = g.get("user")
    target = landing(user)
    if target != url_for("ui.home"):
        return redirect(target)
    extra = {}
    if user and "queues.work" in user["permissions"]:
        from .queues.worklist import work_outlook

        try:
            with rpc() as proxy:
                extra = work_outlook(proxy)
        except Exception:  # noqa: BLE001 - a service down: the status section below says so
            extra = {}
    return render_template("home.html", **extra)


@bp.get("/estado")
def status_fragment():
    """Loaded by htmx into the home page so a slow service never delays the page."""
    body, _ = check_services()
    return render_template("_status.html", health=body)


@bp.get("/idioma/<code>")
def set_language(code: str):
    """Remember the chosen language and go back to the page the user was on."""
    response = redirect(safe_next(request.args.get("next")))
    if code in LANGUAGES:
        response.set_cookie(COOKIE, code, max_age=ONE_YEAR, samesite="Lax", httponly=True,
                            secure=request.is_secure)
    return response
