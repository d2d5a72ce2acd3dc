"""The debtor portal, ``/mi-cuenta``: phone-first pages where a debtor, with no account
or password, opens the personal link an agent sent, answers the second factor their
institution asks, and then sees and settles their debt alone.

The link's token and the answer are checked by the auth service, which answers every
refusal in the same words (nothing tells whether a link, a name or an account exists)
and opens a debtor session: its random id travels in a cookie limited to ``/mi-cuenta``
(HttpOnly, SameSite=Strict), and each request resolves it to a debtor principal the
services check against their own rows (only that debtor's accounts). The staff's
session cookie means nothing here. Forms carry a token derived from the session id
(a page of another site cannot know it). The API of the same actions for a mobile app
is ``api/portal.py``; both call the helpers here.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import (Blueprint, abort, g, make_response, redirect, render_template,
                   request, url_for)
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from recaudo_common.localtime import DEFAULT_ZONE

from .. import auth, security, timefmt
from ..debtor_portal import close, debtor_rpc, dispute, open_link, overview, resolve
from ..validation import N_
from . import error_pages

bp = Blueprint("portal", __name__, url_prefix="/mi-cuenta")

PORTAL_COOKIE = "recaudo_portal"
SECOND_FACTORS = {
    "birth_date": ("date", N_("Su fecha de nacimiento")),
    "account_last4": ("text", N_("Los últimos 4 dígitos de su número de cuenta")),
    "rfc_last4": ("text", N_("Los últimos 4 caracteres de su RFC")),
}
#: what a finished action says on the page it goes back to
DONE = {
    "promesa": N_("Su promesa de pago quedó registrada."),
    "aprobacion": N_("Su propuesta quedó en revisión: le avisaremos cuando sea aprobada."),
    "liquidacion": N_("Aceptó la oferta de liquidación: pague el monto antes de la fecha indicada."),
    "liquidacion_revision": N_("Su solicitud de descuento quedó pendiente de aprobación: le "
                               "avisaremos cuando la revisen. No pague antes de la aprobación."),
    "aclaracion": N_("Su aclaración quedó abierta; la revisaremos y le responderemos."),
    "preferencias": N_("Sus preferencias de contacto quedaron guardadas."),
    "llamada": N_("Le llamaremos en el horario que pidió."),
}
CHANNELS = {"call": N_("Llamadas"), "sms": N_("Mensajes SMS"), "email": N_("Correo electrónico"),
            "letter": N_("Cartas"), "visit": N_("Visitas")}
PLAN_ROWS = 4


def csrf_token() -> str:
    """Derived from the session id (only its holder can know it)."""
    return hmac.new(g.portal_token.encode(), b"portal-csrf", hashlib.sha256).hexdigest()[:40]


# --- pages ------------------------------------------------------------------------------

def _error(status: int, code: str, message: str):
    return render_template("portal/message.html", title=_("Mi cuenta"), message=message), status


error_pages.register(bp, _error)


@bp.before_request
def _session():
    g.portal_identity = None
    if request.endpoint in ("portal.verify", "portal.language"):
        return None
    if resolve(request.cookies.get(PORTAL_COOKIE)) is None:
        response = make_response(render_template(
            "portal/message.html", title=_("Mi cuenta"),
            message=_("Su sesión terminó o la liga no es válida. Abra de nuevo la liga que "
                      "le enviamos o pida una nueva a su gestor.")), 401)
        response.delete_cookie(PORTAL_COOKIE, path=bp.url_prefix)
        return response
    if request.method == "POST" and not hmac.compare_digest(
            request.form.get("csrf_token", ""), csrf_token()):
        abort(403)
    return None


@bp.after_request
def _private(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _portal_helpers():
    return {"portal_csrf": csrf_token() if g.get("portal_token") else None}


def _factor(institution_id: int) -> tuple[str, str]:
    with auth.anonymous_rpc() as proxy:
        kind = proxy.auth.portal_settings(institution_id)["second_factor"]
    field, label = SECOND_FACTORS[kind]
    return field, _(label)


@bp.route("/<int:institution_id>/<token>", methods=["GET", "POST"])
def verify(institution_id: int, token: str):
    """The link's page: the second factor's question, the same for any token."""
    field, label = _factor(institution_id)
    problem, status = None, 200
    if request.method == "POST":
        if not auth.login_csrf_ok():
            abort(403)
        answer = request.form.get("answer", "").strip()
        try:
            opened = open_link(institution_id, token, answer[:60] or "-", _language())
        except (NotAuthenticated, InvalidInput):
            problem, status = _("No pudimos verificar sus datos. Revise su respuesta o pida "
                                "una liga nueva."), 401
        else:
            response = redirect(url_for(".home"))
            response.set_cookie(PORTAL_COOKIE, opened["session_token"], httponly=True,
                                samesite="Strict", path=bp.url_prefix,
                                secure=security.served_over_tls())
            return response
    return render_template("portal/verify.html", field=field, label=label, problem=problem,
                           login_csrf=auth.login_csrf_token(),
                           action=url_for(".verify", institution_id=institution_id,
                                          token=token)), status


def _language() -> str:
    from ..i18n import current_language
    return current_language()


@bp.get("/idioma/<code>")
def language(code: str):
    """Spanish or English, remembered like the staff's choice."""
    from ..i18n import COOKIE, LANGUAGES
    response = redirect(request.referrer if request.referrer and
                        request.referrer.startswith(request.host_url) else url_for(".home"))
    if code in LANGUAGES:
        response.set_cookie(COOKIE, code, max_age=365 * 86400, samesite="Lax", httponly=True,
                            secure=security.served_over_tls())
    return response


def _zone(data: dict) -> ZoneInfo:
    try:
        return ZoneInfo(data.get("time_zone") or DEFAULT_ZONE)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def _page(errors: dict | None = None, form: str | None = None, status: int = 200):
    data = overview()
    done = request.args.get("hecho")
    g.reader_zone = _zone(data)
    return render_template("portal/home.html", data=data, errors=errors or {}, failed=form,
                           done=_(DONE[done]) if done in DONE else None,
                           channels={k: _(v) for k, v in CHANNELS.items()},
                           plan_rows=PLAN_ROWS, today=timefmt.institution_today(
                               data.get("time_zone")).isoformat()), status


@bp.get("/")
def home():
    return _page()


def _done(code: str, anchor: str):
    return redirect(url_for(".home", hecho=code) + "#" + anchor)


def _account_id() -> int:
    try:
        return int(request.form.get("account_id", ""))
    except ValueError:
        raise NotFound("Cuenta no encontrada") from None


def _acting(form: str, anchor: str, action):
    """Run ``action``; a refusal shows the page again with the form's fields marked."""
    try:
        code = action()
    except InvalidInput as refused:
        return _page({form: refused.fields or {"_": [refused.message]}}, form, 422)
    except Conflict as refused:
        return _page({form: {"_": [refused.message]}}, form, 409)
    return _done(code, anchor)


@bp.post("/promesa")
def promise():
    """One payment (date and amount) or a plan (several rows)."""
    def act():
        rows = [(request.form.get(f"due_date_{n}", "").strip(),
                 request.form.get(f"amount_{n}", "").strip()) for n in range(PLAN_ROWS)]
        rows = [r for r in rows if r[0] or r[1]]
        if request.form.get("kind") == "plan":
            terms = {"instalments": [{"due_date": d, "amount": a} for d, a in rows]}
        else:
            terms = {"due_date": request.form.get("due_date", ""),
                     "amount": request.form.get("amount", "")}
        with debtor_rpc() as proxy:
            made = proxy.activities.portal_promise({"account_id": _account_id(),
                                                    "promise": terms})
        return "aprobacion" if made["approval"] else "promesa"
    return _acting("promise" if request.form.get("kind") != "plan" else "plan", "promesas", act)


@bp.post("/liquidacion")
def settlement():
    """The offer as it stands, or a larger discount asked for (``discount_pct``): above
    the offer's it waits for the approver the institution's limits name."""
    def act():
        data = {"account_id": _account_id()}
        if request.form.get("discount_pct", "").strip():
            data["discount_pct"] = request.form["discount_pct"].strip().replace(",", ".") \
                .rstrip("%").strip()
        with debtor_rpc() as proxy:
            made = proxy.activities.portal_accept_offer(data)
        return "liquidacion_revision" if made["approval"] else "liquidacion"
    return _acting("settlement", "oferta", act)


@bp.post("/aclaracion")
def open_dispute():
    def act():
        dispute(_account_id(), request.form.get("reason", "").strip(),
                request.form.get("evidence", "").strip(), request.files.get("file"))
        return "aclaracion"
    return _acting("dispute", "aclaraciones", act)


@bp.post("/preferencias")
def preferences():
    def act():
        channels = {c: request.form.get(f"channel_{c}") == "on" for c in CHANNELS}
        data = {"channels": channels, "opt_out": request.form.get("opt_out") == "on",
                "language": request.form.get("language") or None,
                "contact_from": request.form.get("contact_from") or None,
                "contact_until": request.form.get("contact_until") or None}
        with debtor_rpc() as proxy:
            proxy.activities.portal_preferences(data)
        return "preferencias"
    return _acting("preferences", "preferencias", act)


@bp.post("/llamada")
def callback():
    """A call at a local date and time (the debtor's zone)."""
    def act():
        data = overview()
        text = request.form.get("callback_at", "")
        try:
            local = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput("Fecha inválida", {"callback_at": [_("Indique fecha y hora")]}) \
                from None
        at = local.replace(tzinfo=_zone(data)) if local.tzinfo is None else local
        with debtor_rpc() as proxy:
            proxy.activities.portal_callback({"account_id": _account_id(),
                                              "callback_at": at.isoformat(),
                                              "note": request.form.get("note", "")[:300]})
        return "llamada"
    return _acting("callback", "llamada", act)


@bp.get("/documento/<int:version_id>")
def document(version_id: int):
    """A document shared with the debtor: a short presigned download."""
    with debtor_rpc() as proxy:
        return redirect(proxy.documents.portal_download_url(version_id)["url"])


@bp.post("/salir")
def logout():
    close(g.portal_token)
    response = make_response(render_template("portal/message.html", title=_("Mi cuenta"),
                                             message=_("Su sesión terminó. Gracias.")))
    response.delete_cookie(PORTAL_COOKIE, path=bp.url_prefix)
    return response
