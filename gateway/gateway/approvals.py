"""The supervisors' approval queue, ``/aprobaciones``: promises, plans (and settlements)
outside their institution's limits, oldest first, each approved or rejected with a note.
The activities service decides who may (``promises.approve``) and what is in scope."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput

from . import auth, error_pages, portfolio
from .rpc import rpc
from .validation import N_

bp = Blueprint("approvals_ui", __name__)
bp.context_processor(portfolio._helpers)
error_pages.register(bp, portfolio._error_page)

DONE = {"approve": N_("Aprobada: la promesa quedó registrada."),
        "reject": N_("Rechazada.")}
CHANNELS = {"agent": N_("Gestor"), "portal": N_("Portal del deudor")}


def _page(problem: str | None = None, status: int = 200):
    with rpc() as proxy:
        page = proxy.activities.list_approvals({"state": "pending", "per_page": 100})
    done = DONE.get(request.args.get("hecho"))
    return render_template("approvals/list.html", page=page, problem=problem,
                           done=_(done) if done else None,
                           channels={k: _(v) for k, v in CHANNELS.items()}), status


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
