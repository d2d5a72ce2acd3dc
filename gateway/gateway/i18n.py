"""Spanish first, English second: the language comes from the user's choice (cookie)."""
from __future__ import annotations

from flask import g, request
from flask_babel import Babel, get_locale

LANGUAGES = {"es": "Español", "en": "English"}
DEFAULT = "es"
COOKIE = "lang"


def select_locale() -> str:
    """The language picked in the menu, else the user's preference, else Spanish. A
    program calling the API names its own first (``Accept-Language``); the UI's pages and
    their own calls (a browser session, whose header is the browser's, not a choice)
    follow the menu."""
    if request.path.startswith("/api/") and g.get("auth_kind") != "session" \
            and request.headers.get("Accept-Language"):
        asked = request.accept_languages.best_match(LANGUAGES)
        if asked:
            return asked
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    user = g.get("user")
    if user and user.get("language") in LANGUAGES:
        return user["language"]
    return DEFAULT


def current_language() -> str:
    try:
        return str(get_locale() or DEFAULT)
    except RuntimeError:
        return DEFAULT


def init_app(app) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    from .timefmt import reader_zone

    # flask_babel's own date helpers (to_utc, format_datetime) follow the reader's zone too
    Babel(app, locale_selector=select_locale, timezone_selector=lambda: str(reader_zone()))

    @app.context_processor
    def languages():
        return {"LANGUAGES": LANGUAGES, "current_language": current_language()}
