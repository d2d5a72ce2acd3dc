"""The staff's side of the limits and the debtor portal: the supervisors' approval queue,
``/aprobaciones`` (promises, plans and settlements outside their institution's limits,
oldest first, each approved or rejected with a note), and the debtor's "Portal" tab,
where an agent sends the debtor a personal link by email or SMS. The services decide who
may and what is in scope."""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput, PermissionDenied

from .. import auth
from ..rpc import rpc
from .. import debtor_portal
from . import portfolio
from ._common import N_, debtor_screens, to_int
from .portfolio import DebtorTab, add_debtor_tab

bp = debtor_screens(Blueprint("approvals_ui", __name__))

DONE = {"approve": N_("Aprobada: la promesa quedó registrada."),
        "reject": N_("Rechazada.")}
CHANNELS = {"agent": N_("Gestor"), "portal": N_("Portal del deudor")}
APPROVERS = {"supervisor": N_("Supervisor"), "administrator": N_("Administrador")}


def _page(problem: str | None = None, status: int = 200):
    with rpc() as proxy:
        page = proxy.activities.list_approvals({"state": "pending", "per_page": 100})
    done = DONE.get(request.args.get("hecho"))
    return render_template("approvals/list.html", page=page, problem=problem,
                           done=_(done) if done else None,
                           channels={k: _(v) for k, v in CHANNELS.items()},
                           approvers={k: _(v) for k, v in APPROVERS.items()}), status


@bp.get("/aprobaciones")
@auth.permission_required("promises.approve")
def approvals():
    return _page()


@bp.post("/aprobaciones/<int:approval_id>")
@auth.permission_required("promises.approve")
def decide(approval_id: int):
    decision = request.form.get("decision", "")
    try:
        with rpc() as proxy:
            proxy.activities.decide_approval(approval_id, {
                "decision": decision, "note": request.form.get("note", "")[:2000]})
    except (InvalidInput, Conflict) as refused:
        problems = " ".join(" ".join(v) if isinstance(v, list) else str(v)
                            for v in (refused.fields or {}).values())
        return _page(problems or refused.message, 422 if isinstance(refused, InvalidInput)
                     else 409)
    return redirect(url_for(".approvals", hecho=decision))


# --- the debtor's "Portal" tab: a personal link, by email or SMS ------------------------------------

def _portal_tab(proxy, view) -> dict:
    try:
        candidates = proxy.messaging.list_templates(view["debtor"]["institution_id"])
    except PermissionDenied:
        candidates = []
    state = g.get("portal_tab") or {}
    return {"portal_templates": [t for t in candidates
                                 if "portal_link" in (t.get("text_es") or "")],
            "portal_sent": state.get("sent"), "portal_errors": state.get("errors", {}),
            "portal_values": state.get("values", {})}


add_debtor_tab(DebtorTab("portal", N_("Portal"), "approvals/portal_tab.html",
                         permission="activities.log", load=_portal_tab))


@bp.post("/deudores/<int:debtor_id>/portal")
@auth.permission_required("activities.log")
def send_portal_link(debtor_id: int):
    form = request.form
    channel = "sms" if form.get("channel") == "sms" else "email"
    data = {"channel": channel,
            "sent_to": form.get("sent_to", "").strip() or None if channel == "email" else None,
            "phone": form.get("phone", "").strip() or None if channel == "sms" else None,
            "template_id": to_int(form.get("template_id")) if channel == "email" else None,
            "account_id": to_int(form.get("account_id")),
            "language": form.get("language") if form.get("language") in ("es", "en") else "es"}
    try:
        with rpc() as proxy:
            g.portal_tab = {"sent": debtor_portal.send_link(proxy, debtor_id, data),
                            "values": data}
    except (InvalidInput, Conflict) as refused:
        g.portal_tab = {"values": data,
                        "errors": {k: v if isinstance(v, list) else [str(v)]
                                   for k, v in (refused.fields or {}).items()}
                        or {"_schema": [refused.message]}}
        return portfolio.debtor_page(debtor_id, "portal", failure=refused.message,
                                      status=422 if isinstance(refused, InvalidInput) else 409)
    return portfolio.debtor_page(debtor_id, "portal")
