"""The collection queues' screens: the strategy editor (queues in order, each with its
conditions, sort, team and assignment policy; champion/challenger) with the simulation
and application of a strategy (``strategies``, the form itself: ``editor``), the
supervisors' board (``board``), and the collectors' "Siguiente cuenta" button and
worklist (``worklist``). One blueprint, ``queues_ui``; what its pages share is here.

Editing steps are swapped by htmx (the page does not jump; without JavaScript the whole
page reloads); an error of an htmx request is shown in the page's alert box. The service
enforces permissions and institution scope; these views collect forms and shape the
answers.
"""
from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.routing import BuildError

from ... import auth
from .. import error_pages
from .._common import N_, alert_error_page, label_of, to_int, url_with
from .conditions import (CHOICE_LABELS, DIRECTION_LABELS, FIELD_LABELS, GROUP_LABELS,
                         OPERATOR_LABELS, POLICY_HELP, POLICY_LABELS, STATE_LABELS)

bp = Blueprint("queues_ui", __name__, url_prefix="/filas")

#: ?done=<key> after a successful POST -> the notice shown on the page it lands on
NOTICES = {
    "saved": N_("Estrategia guardada."),
    "created": N_("Estrategia creada como borrador."),
    "resynced": N_("Datos de cartera actualizados."),
    "rebuilt": N_("Filas reconstruidas con la estrategia activa."),
    "frozen": N_("Fila congelada: nadie recibirá cuentas de ella."),
    "unfrozen": N_("Fila descongelada."),
    "released": N_("Cuenta liberada: volvió a la fila."),
    "not_held": N_("Esa cuenta ya no estaba apartada para usted."),
}


# --- small helpers -----------------------------------------------------------------------------

def debtor_url(debtor_id: int, account_id: int, queue_id: int | None = None) -> str:
    """The debtor's 360° view with the account highlighted and, when it was served by a
    queue, that queue (``fila``): the work logged there counts for it in productivity."""
    args = {"cuenta": account_id, **({"fila": queue_id} if queue_id else {})}
    try:
        return url_for("portfolio_ui.debtor", debtor_id=debtor_id, **args)
    except BuildError:
        return f"/deudores/{debtor_id}?" + "&".join(f"{k}={v}" for k, v in args.items())


@bp.context_processor
def _helpers():
    notice = NOTICES.get(request.args.get("done"))
    if request.args.get("done") == "reassigned":
        moved = to_int(request.args.get("n"), 0)
        notice_text = ngettext("Se reasignó %(num)s cuenta.", "Se reasignaron %(num)s cuentas.",
                               moved)
    else:
        notice_text = _(notice) if notice else None
    return {"url_with": url_with, "debtor_url": debtor_url,
            "notice": notice_text,
            "state_label": lambda code: label_of(STATE_LABELS, code),
            "policy_label": lambda code: label_of(POLICY_LABELS, code),
            "field_label": lambda code: label_of(FIELD_LABELS, code),
            "operator_label": lambda code: label_of(OPERATOR_LABELS, code),
            "sum_money": lambda rows: sum((Decimal(str(r["balance"] or 0)) for r in rows),
                                          Decimal(0)),
            "choice_label": lambda code: label_of(CHOICE_LABELS, code),
            "choice_text": lambda text: ", ".join(label_of(CHOICE_LABELS, p.strip())
                                                  for p in (text or "").split(",") if p.strip()),
            "direction_label": lambda code: label_of(DIRECTION_LABELS, code),
            "POLICIES": [(code, _(label), _(POLICY_HELP[code]))
                         for code, label in POLICY_LABELS.items()],
            "GROUPS": [(code, _(label)) for code, label in GROUP_LABELS.items()],
            "DIRECTIONS": [(code, _(label)) for code, label in DIRECTION_LABELS.items()]}


# --- errors of these pages as pages (htmx requests: a message in the page's alert box) ------

error_pages.register(bp, alert_error_page)


# --- what several pages need --------------------------------------------------------------------

def _institutions(proxy) -> list[dict]:
    return proxy.portfolio.list_institutions()


def _chosen_institution(institutions: list[dict], wanted) -> dict | None:
    """The institution asked for (``?institucion=``), else the first one in reach."""
    wanted = to_int(wanted)
    return next((i for i in institutions if i["id"] == wanted), None) or \
        (institutions[0] if institutions else None)


def _teams(proxy) -> list[dict]:
    return proxy.auth.list_teams()


def _agent_names(teams: list[dict]) -> dict[int, str]:
    return {m["id"]: m["display_name"] for t in teams for m in t["members"]}


# --- the area's entry: the strategies for who manages them, else the worklist -----------------

@bp.get("/")
@auth.login_required
def index():
    if "queues.manage" in g.user["permissions"]:
        return redirect(url_for(".strategies"))
    if "queues.work" in g.user["permissions"]:
        return redirect(url_for(".worklist"))
    abort(403)


# the pages register their routes on ``bp``
from . import board, strategies, worklist  # noqa: E402,F401
