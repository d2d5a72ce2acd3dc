"""The web UI shell: home page, language switch, system status fragment."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request

from .boundary import safe_next
from .health import check_services
from .i18n import COOKIE, LANGUAGES

bp = Blueprint("ui", __name__)

ONE_YEAR = 365 * 24 * 3600


@bp.get("/")
def home():
    return render_template("home.html")


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
