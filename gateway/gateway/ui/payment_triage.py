"""The triage list of payments a provider notified under a reference no account holds
("Pagos por asignar", supervisors and administrators: ``portfolio.write``): each one is
assigned to an account (credited as a payments file would) or dismissed with a note. The
portfolio service enforces permission and scope; this view collects the forms."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput, NotFound

from .. import auth
from ..errors import HTTP_STATUS
from ..rpc import rpc
from ._common import N_, debtor_screens, page_arg, to_int
from .activities import form_errors

bp = debtor_screens(Blueprint("payments_ui", __name__))

NOTICES = {"assigned": N_("Pago abonado a la cuenta."), "dismissed": N_("Pago descartado.")}


def _page(status=200, errors=None, failed_id=None):
    page = page_arg()
    with rpc() as proxy:
        items = proxy.portfolio.payment_triage({"page": page, "per_page": 25})
    done = request.args.get("done")
    return render_template("payments/triage.html", page=items, errors=errors or {},
                           failed_id=failed_id,
                           notice=_(NOTICES[done]) if done in NOTICES else None), status


@bp.get("/pagos/por-asignar")
@auth.permission_required("portfolio.write")
def triage():
    return _page()


def _act(notification_id: int, method: str, data: dict, done: str):
    try:
        with rpc() as proxy:
            getattr(proxy.portfolio, method)(notification_id, data)
    except (InvalidInput, Conflict, NotFound) as exc:
        errors = form_errors(exc.fields) or {"_schema": [exc.message]}
        if isinstance(exc, NotFound):
            errors = {"account_id": [_("Cuenta no encontrada.")]}
        return _page(HTTP_STATUS[type(exc)], errors, notification_id)
    return redirect(url_for(".triage", done=done))


@bp.post("/pagos/<int:notification_id>/asignar")
@auth.permission_required("portfolio.write")
def assign(notification_id: int):
    return _act(notification_id, "assign_triaged_payment",
                {"account_id": to_int(request.form.get("account_id")),
                 "note": request.form.get("note", "")}, "assigned")


@bp.post("/pagos/<int:notification_id>/descartar")
@auth.permission_required("portfolio.write")
def dismiss(notification_id: int):
    return _act(notification_id, "dismiss_triaged_payment",
                {"note": request.form.get("note", "")}, "dismissed")
