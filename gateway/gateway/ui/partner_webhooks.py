"""Partners' webhooks under Administración (``webhooks.manage``: an institution's
integration users and administrators): the subscriptions of the caller's institutions,
a new one (an https:// address, the events it wants; its signing secret shown once),
pausing, resuming and removing one, and its delivery log page by page with each
attempt's answer and "Reenviar". The same RPCs as ``api/webhooks.py``; the messaging
service checks the address (no private ones), the permission and the scope (another
institution's subscription or delivery answers 404, like a missing one).
"""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from messaging.contracts import DELIVERY_STATES, PARTNER_EVENTS

from .. import auth
from ..rpc import rpc
from ._common import (N_, Failure, attempt, done, error_page, notice_of, page_arg,
                      shown_once, to_int, translated, url_with)
from . import error_pages

bp = Blueprint("webhooks_ui", __name__, url_prefix="/admin/webhooks")
error_pages.register(bp, error_page)

PERMISSION = "webhooks.manage"
PER_PAGE = 25
NOTICES = {"paused": N_("Suscripción en pausa: sus eventos esperan a que se reanude."),
           "resumed": N_("Suscripción reanudada: se envía lo pendiente."),
           "deleted": N_("Suscripción eliminada."),
           "resent": N_("Entrega pendiente de nuevo: se envía ya.")}
EVENT_LABELS = {"payment_received": N_("Pago recibido"), "promise_made": N_("Promesa hecha"),
                "promise_kept": N_("Promesa cumplida"), "promise_broken": N_("Promesa rota"),
                "dispute_opened": N_("Aclaración abierta"),
                "dispute_resolved": N_("Aclaración resuelta"),
                "stage_changed": N_("Cambio de etapa"), "activity_logged": N_("Gestión registrada")}
STATE_LABELS = {"pending": N_("pendiente"), "delivered": N_("entregada"), "failed": N_("fallida")}
FORM_FIELDS = {"institution_id", "url", "events", "contact_email"}


@bp.context_processor
def _helpers():
    return {"notice": notice_of(NOTICES), "EVENTS": translated(EVENT_LABELS),
            "DELIVERY_STATES": translated(STATE_LABELS), "url_with": url_with,
            "section": "webhooks"}


def _list_page(values=None, failure: Failure | None = None, status=200):
    with rpc() as proxy:
        subscriptions = proxy.messaging.list_webhook_subscriptions()
        institutions = proxy.portfolio.list_institutions()
    names = {i["id"]: i["name"] for i in institutions}
    return render_template(
        "webhooks/list.html", subscriptions=subscriptions, institutions=institutions,
        names=names, events=PARTNER_EVENTS, failure=failure,
        values=values or {"institution_id": institutions[0]["id"] if institutions else None,
                          "events": [], "url": "", "contact_email": ""},
        errors=failure.fields if failure else {},
        others=failure.others(FORM_FIELDS) if failure else []), status


@bp.get("")
@auth.permission_required(PERMISSION)
def subscriptions():
    return _list_page()


@bp.post("")
@auth.permission_required(PERMISSION)
def new_subscription():
    form = request.form
    raw = form.get("institution_id", "")
    values = {"institution_id": to_int(raw, raw or None), "url": form.get("url", "").strip(),
              "events": [e for e in form.getlist("events") if e],
              "contact_email": form.get("contact_email", "").strip()}
    with rpc() as proxy:
        created, failure = attempt(lambda: proxy.messaging.create_webhook_subscription(values))
    if failure is None:
        return shown_once("webhooks/created.html", subscription=created)
    return _list_page(values, failure, failure.status)


@bp.post("/<int:subscription_id>/estado")
@auth.permission_required(PERMISSION)
def set_active(subscription_id: int):
    """Pause (events wait) or resume (a paused one sends what waited)."""
    active = request.form.get("active") == "1"
    with rpc() as proxy:
        proxy.messaging.update_webhook_subscription(subscription_id, {"active": active})
    return done(".subscriptions", "resumed" if active else "paused")


@bp.post("/<int:subscription_id>/eliminar")
@auth.permission_required(PERMISSION)
def delete(subscription_id: int):
    with rpc() as proxy:
        proxy.messaging.delete_webhook_subscription(subscription_id)
    return done(".subscriptions", "deleted")


@bp.get("/<int:subscription_id>")
@auth.permission_required(PERMISSION)
def deliveries(subscription_id: int):
    with rpc() as proxy:
        page = proxy.messaging.webhook_deliveries(subscription_id,
                                                  {"page": page_arg(), "per_page": PER_PAGE})
        subscription = next((s for s in proxy.messaging.list_webhook_subscriptions()
                             if s["id"] == subscription_id), None)
    if subscription is None:   # removed meanwhile
        abort(404)
    page["pages"] = max(1, -(-page["total"] // PER_PAGE))
    return render_template("webhooks/deliveries.html", page=page, subscription=subscription,
                           states=DELIVERY_STATES)


@bp.post("/entregas/<int:delivery_id>/reenviar")
@auth.permission_required(PERMISSION)
def resend(delivery_id: int):
    with rpc() as proxy:
        delivery = proxy.messaging.resend_webhook_delivery(delivery_id)
    return done(".deliveries", "resent", subscription_id=delivery["subscription_id"],
                pagina=to_int(request.form.get("pagina")))
