"""What every screen of the web UI shares, written once: reading query arguments, this
page's URL with some changed, the labels and notices the debtor's screens show, and
how an error becomes a page (a full page, or for htmx the message where the swap goes).

One rule each: a number typed in a form or a URL that is not one reads as the default
(the service answers for what it needs); ``?pagina=`` is between 1 and 100,000;
``?done=<key>`` after a successful POST names the notice of the page it lands on.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput, PermissionDenied

from . import error_pages
from ..errors import HTTP_STATUS
from ..validation import N_, localize_fields

MAX_PAGE = 100_000


# --- reading the request ------------------------------------------------------------------

def to_int(value, default=None):
    """``value`` as an integer, or ``default`` when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def page_arg() -> int:
    """The page asked for in ``?pagina=`` (1 when absent or not a number)."""
    return min(max(to_int(request.args.get("pagina"), 1), 1), MAX_PAGE)


def url_with(**changes) -> str:
    """This page's URL with some query arguments changed (None drops one)."""
    args = request.args.to_dict()
    args.pop("done", None)
    args.update(changes)
    args = {k: v for k, v in args.items() if v not in (None, "")}
    return url_for(request.endpoint, **(request.view_args or {}), **args)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def htmx_target() -> str | None:
    """The element an htmx request swaps (None for a normal page load)."""
    return request.headers.get("HX-Target") if is_htmx() else None


# --- labels ---------------------------------------------------------------------------------

def translated(labels: dict) -> dict:
    """code -> label in the request's language (the labels are marked with ``N_``)."""
    return {code: _(label) for code, label in labels.items()}


def label_of(labels: dict, code, fallback=None) -> str:
    """One code's label; a code not listed shows ``fallback`` or itself."""
    if code in labels:
        return _(labels[code])
    return fallback or str(code)


#: code -> label of what the debtor's screens show (the 360° view and its tabs, the lists)
STAGES = {"current": N_("Al corriente"), "delinquent": N_("Moroso"),
          "litigation": N_("Litigio")}
PHONE_KINDS = {"mobile": N_("Celular"), "home": N_("Casa"), "work": N_("Trabajo"),
               "other": N_("Otro")}
EMAIL_KINDS = {"personal": N_("Personal"), "work": N_("Trabajo"), "other": N_("Otro")}
ADDRESS_KINDS = {"home": N_("Particular"), "work": N_("Trabajo"), "other": N_("Otro")}
MOVEMENT_KINDS = {"charge": N_("Cargo"), "payment": N_("Pago"), "adjustment": N_("Ajuste")}
IMPORT_STATES = {"queued": N_("En cola"), "running": N_("En proceso"),
                 "done": N_("Terminada"), "failed": N_("Falló")}
LAYOUT_KINDS = {"portfolio": N_("Cartera"), "payments": N_("Pagos")}
#: the kinds of contact a do-not-contact mark is kept on
CONTACT_CHANNELS = {"phone": N_("Teléfono"), "email": N_("Correo"), "address": N_("Domicilio")}
#: ?done=<key> -> the notice of the debtor's screens; each area adds its own keys
NOTICES = {"notes": N_("Notas guardadas."), "account": N_("Cuenta actualizada."),
           "do_not_contact": N_("Marca de no contactar guardada.")}


def dpd_class(days) -> str:
    """Colour bucket of days past due (0, 1-30, 31-90, over 90)."""
    days = days or 0
    if days <= 0:
        return "dpd-0"
    if days <= 30:
        return "dpd-30"
    if days <= 90:
        return "dpd-90"
    return "dpd-late"


def debtor_screen_context() -> dict:
    """What the templates of the debtor's screens use, whichever blueprint draws them."""
    notice = NOTICES.get(request.args.get("done"))
    return {"url_with": url_with, "dpd_class": dpd_class,
            "notice": _(notice) if notice else None,
            "STAGES": translated(STAGES), "PHONE_KINDS": translated(PHONE_KINDS),
            "EMAIL_KINDS": translated(EMAIL_KINDS), "ADDRESS_KINDS": translated(ADDRESS_KINDS),
            "MOVEMENT_KINDS": translated(MOVEMENT_KINDS),
            "IMPORT_STATES": translated(IMPORT_STATES),
            "LAYOUT_KINDS": translated(LAYOUT_KINDS),
            "CONTACT_CHANNELS": translated(CONTACT_CHANNELS)}


# --- errors as pages ------------------------------------------------------------------------

def error_page(status: int, code: str, message: str):
    """The error page; for htmx, the message in place of the element it swaps."""
    if htmx_target():
        return render_template("_error.html", status=status, message=message), status
    return render_template("error.html", status=status, code=code, message=message), status


def alert_error_page(status: int, code: str, message: str):
    """For the editors (strategies, campaigns): an htmx request keeps the form as typed and
    shows the message in the page's alert box (``#queues-alert``)."""
    if is_htmx():
        response = make_response(render_template("_alert.html", message=message), 200)
        response.headers.update({"HX-Retarget": "#queues-alert", "HX-Reswap": "innerHTML",
                                 "HX-Reselect": "#alert-content"})
        return response
    return render_template("error.html", status=status, code=code, message=message), status


def debtor_screens(bp: Blueprint) -> Blueprint:
    """``bp`` draws the debtor's screens: their labels and notices, their error pages."""
    bp.context_processor(debtor_screen_context)
    error_pages.register(bp, error_page)
    return bp


# --- administrators' forms ------------------------------------------------------------------

@dataclass
class Failure:
    """Why the service refused a form: HTTP status, message, field -> problems.

    ``fields`` holds each top-level field's problems as one flat list (a form with one
    input per field shows them there); ``paths`` the same problems by dotted path
    (``discount_bands.0.thresholds.1.up_to_pct``) for forms with rows of inputs."""

    status: int
    message: str
    fields: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    def __post_init__(self):
        raw = localize_fields(self.fields) if isinstance(self.fields, dict) else {}
        self.paths = by_path(raw)
        self.fields = {name: _flatten(problems) for name, problems in raw.items()}

    def others(self, shown) -> list[str]:
        """Problems of fields the form does not show (told above the form)."""
        return [f"{name}: {problem}" if name != "_schema" else problem
                for name, problems in self.fields.items() if name not in shown
                for problem in problems]


def _flatten(problems) -> list[str]:
    """marshmallow nests the problems of list items by index: one flat list of text."""
    if isinstance(problems, dict):
        return [p for nested in problems.values() for p in _flatten(nested)]
    if isinstance(problems, (list, tuple)):
        return [p for nested in problems for p in _flatten(nested)]
    return [str(problems)]


def by_path(problems, prefix: str = "") -> dict[str, list[str]]:
    """Nested problems (by field, then list index...) as dotted path -> flat list."""
    if not isinstance(problems, dict):
        return {prefix: _flatten(problems)} if prefix else {"_schema": _flatten(problems)}
    out: dict[str, list[str]] = {}
    for key, nested in problems.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        for name, messages in by_path(nested, path).items():
            out.setdefault(name, []).extend(messages)
    return out


def attempt(call):
    """Run a change; ``(result, None)`` or ``(None, Failure)`` for what a form can show.
    NotFound and the rest propagate (the error page)."""
    try:
        return call(), None
    except InvalidInput as exc:
        return None, Failure(422, _("Revise los campos marcados.") if exc.fields
                             else exc.message, exc.fields)
    except (PermissionDenied, Conflict) as exc:
        return None, Failure(HTTP_STATUS[type(exc)], exc.message, exc.fields)


def done(endpoint: str, notice: str, **values):
    """Post/redirect/get: the page to land on, with the key of its notice."""
    return redirect(url_for(endpoint, done=notice, **values))


def notice_of(notices: dict) -> str | None:
    """The notice ``?done=`` names among ``notices``, translated (None: none)."""
    notice = notices.get(request.args.get("done"))
    return _(notice) if notice else None


def institution_in_reach(proxy, wanted) -> tuple[list[dict], dict | None]:
    """The caller's institutions and the one ``wanted`` (the first when none is named).
    One named but out of reach answers 404, exactly like one that does not exist."""
    institutions = proxy.portfolio.list_institutions()
    wanted = to_int(wanted)
    if wanted is None:
        return institutions, institutions[0] if institutions else None
    chosen = next((i for i in institutions if i["id"] == wanted), None)
    if chosen is None:
        abort(404)
    return institutions, chosen


def shown_once(template: str, **context):
    """A page holding a secret shown this once: never in a URL (so no redirect to it),
    never kept by the browser or a proxy."""
    response = make_response(render_template(template, **context))
    response.headers["Cache-Control"] = "no-store"
    return response
