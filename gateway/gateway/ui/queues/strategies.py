"""The strategy editor's pages: the strategies of an institution, a new one, editing one
(each editing step re-rendered, "Guardar" and "Simular" saving it), its simulation and
its application, and refreshing the queues' facts or rebuilding them."""
from __future__ import annotations

from flask import abort, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied

from ... import auth
from .._common import is_htmx, to_int
from ...errors import HTTP_STATUS
from ...rpc import rpc
from . import _agent_names, _chosen_institution, _institutions, _teams, bp
from .conditions import Catalogue
from .editor import (Problems, apply_action, draft_from_form, draft_from_strategy, new_queue,
                     payload_of)

def _editor_context(proxy, draft: dict, strategy: dict | None, institution: dict,
                    problems: Problems | None = None) -> dict:
    catalogue = Catalogue(proxy.queues.condition_catalogue())
    teams = _teams(proxy)
    others = [s for s in proxy.queues.list_strategies(institution["id"])
              if not strategy or s["id"] != strategy["id"]]
    known = {t["id"] for t in teams}
    for q in draft["queues"]:   # a team out of the user's reach still shows as its number
        if q["team_id"] and q["team_id"] not in known:
            teams.append({"id": q["team_id"], "name": f"#{q['team_id']}", "members": []})
            known.add(q["team_id"])
    return {"draft": draft, "strategy": strategy, "institution": institution,
            "catalogue": catalogue, "teams": teams, "challengers": others,
            "problems": problems,
            "editable": strategy is None or strategy["state"] == "draft"}


def _editor_page(context: dict, status: int = 200):
    return render_template("queues/strategy.html", section="strategies", **context), status


def _saved(url: str):
    """After a successful save: the page to land on (htmx: a whole-page visit)."""
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)


def _edit(institution: dict, strategy: dict | None):
    """One POST of the editor: an editing step re-renders; "save"/"simulate" save."""
    action = request.form.get("action", "save")
    draft = draft_from_form(request.form, institution["id"])
    with rpc() as proxy:
        if action not in ("save", "simulate"):
            draft = apply_action(draft, action)
            return _editor_page(_editor_context(proxy, draft, strategy, institution))
        catalogue = Catalogue(proxy.queues.condition_catalogue())
        payload, origins = payload_of(draft, catalogue)
        try:
            saved = proxy.queues.save_strategy(
                payload, strategy["id"] if strategy and strategy["state"] == "draft" else None)
        except (InvalidInput, Conflict, PermissionDenied) as exc:
            invalid = isinstance(exc, InvalidInput)
            message = _("Revise los campos marcados.") if invalid and exc.fields else exc.message
            problems = Problems(message, exc.fields if not isinstance(exc, PermissionDenied)
                                else {}, origins)
            context = _editor_context(proxy, draft, strategy, institution, problems)
            # htmx swaps only what a 2xx answer brings; a page load gets the real status
            return _editor_page(context, 200 if is_htmx() else HTTP_STATUS[type(exc)])
    created = strategy is None or strategy["state"] != "draft"
    if action == "simulate":
        return _saved(url_for(".strategy", strategy_id=saved["id"], simular=1,
                              _anchor="simulacion"))
    return _saved(url_for(".strategy", strategy_id=saved["id"],
                          done="created" if created else "saved"))


@bp.get("/estrategias")
@auth.permission_required("queues.manage")
def strategies():
    with rpc() as proxy:
        institutions = _institutions(proxy)
        institution = _chosen_institution(institutions, request.args.get("institucion"))
        items = proxy.queues.list_strategies(institution["id"]) if institution else []
        teams = {t["id"]: t["name"] for t in _teams(proxy)}
    names = {s["id"]: s["name"] for s in items}
    return render_template("queues/strategies.html", institutions=institutions,
                           institution=institution, strategies=items, team_names=teams,
                           strategy_names=names, section="strategies")


@bp.route("/estrategias/nueva", methods=["GET", "POST"])
@auth.permission_required("queues.manage")
def new_strategy():
    with rpc() as proxy:
        institutions = _institutions(proxy)
    wanted = request.values.get("institucion")
    institution = next((i for i in institutions if i["id"] == to_int(wanted)), None)
    if institution is None:
        if wanted is not None or not institutions:
            abort(404)
        institution = institutions[0]
    if request.method == "POST":
        return _edit(institution, None)
    copy_of = to_int(request.args.get("copia"))
    with rpc() as proxy:
        if copy_of:
            source = proxy.queues.get_strategy(copy_of)
            draft = draft_from_strategy(source)
            draft["name"] = _("%(name)s (copia)", name=source["name"])[:80]
            for q in draft["queues"]:
                q["id"] = None
        else:
            draft = {"name": "", "institution_id": institution["id"], "challenger_id": None,
                     "challenger_share": 0, "queues": [new_queue(1)]}
            teams = _teams(proxy)
            if len(teams) == 1:   # a supervisor's own team
                draft["queues"][0]["team_id"] = teams[0]["id"]
        return _editor_page(_editor_context(proxy, draft, None, institution))


def _strategy_and_institution(proxy, strategy_id: int) -> tuple[dict, dict]:
    strategy = proxy.queues.get_strategy(strategy_id)
    institution = next((i for i in _institutions(proxy)
                        if i["id"] == strategy["institution_id"]), None)
    if institution is None:
        raise NotFound("Institución no encontrada")
    return strategy, institution


@bp.route("/estrategias/<int:strategy_id>", methods=["GET", "POST"])
@auth.permission_required("queues.manage")
def strategy(strategy_id: int):
    with rpc() as proxy:
        current, institution = _strategy_and_institution(proxy, strategy_id)
    if request.method == "POST":
        return _edit(institution, current)
    with rpc() as proxy:
        context = _editor_context(proxy, draft_from_strategy(current), current, institution)
        if request.args.get("simular"):
            context.update(_simulation_context(proxy, current))
    return _editor_page(context)


def _queue_names(proxy, institution_id: int) -> dict[int, str]:
    """Every queue of the institution's strategies: id -> "Strategy · Queue"."""
    names = {}
    for s in proxy.queues.list_strategies(institution_id):
        for q in s["queues"]:
            names[q["id"]] = q["name"] if s["state"] != "archived" else f"{s['name']} · {q['name']}"
    return names


def _simulation_context(proxy, strategy: dict) -> dict:
    result = proxy.queues.simulate_strategy(strategy["id"])
    names = _queue_names(proxy, strategy["institution_id"])
    order = {q["id"]: (0, q["position"]) for q in strategy["queues"]}
    queues = sorted(result["queues"], key=lambda q: order.get(q["queue_id"], (1, q["queue_id"])))
    by_id = {q["queue_id"]: q for q in queues}
    # every queue of the strategy, the empty ones too (the service lists those with accounts)
    rows = [by_id.get(q["id"], {"queue_id": q["id"], "accounts": 0, "balance": "0",
                                "challenger": 0, "sample": []}) for q in strategy["queues"]]
    rows += [q for q in queues if q["queue_id"] not in order]   # the challenger's queues
    moves = sorted(result["moves"], key=lambda m: -m["accounts"])
    return {"simulation": {"rows": rows, "moves": moves, "unplaced": result["unplaced"],
                           "leaving": result["leaving_queues"],
                           "total": sum(q["accounts"] for q in rows)},
            "queue_names": names, "agent_names": _agent_names(_teams(proxy))}


@bp.get("/estrategias/<int:strategy_id>/simulacion")
@auth.permission_required("queues.manage")
def simulation(strategy_id: int):
    """The preview alone (htmx loads it into the strategy's page); else the whole page."""
    if not is_htmx():
        return redirect(url_for(".strategy", strategy_id=strategy_id, simular=1,
                                _anchor="simulacion"))
    with rpc() as proxy:
        current = proxy.queues.get_strategy(strategy_id)
        context = _simulation_context(proxy, current)
    return render_template("queues/_simulation.html", strategy=current, **context)


@bp.post("/estrategias/<int:strategy_id>/aplicar")
@auth.permission_required("queues.manage")
def apply(strategy_id: int):
    with rpc() as proxy:
        current, institution = _strategy_and_institution(proxy, strategy_id)
        status, applied, refused = 200, None, None
        try:
            applied = proxy.queues.apply_strategy(strategy_id)
        except Conflict as exc:
            status, refused = 409, exc.message
        current = proxy.queues.get_strategy(strategy_id)
        context = _editor_context(proxy, draft_from_strategy(current), current, institution)
        if applied:
            names = _queue_names(proxy, current["institution_id"])
            applied["rows"] = [(names.get(to_int(q), f"#{q}"), n)
                               for q, n in applied["counts"].items()]
            applied["total"] = sum(applied["counts"].values())
    return _editor_page({**context, "applied": applied, "refused": refused}, status)


@bp.post("/instituciones/<int:institution_id>/resincronizar")
@auth.permission_required("queues.manage")
def resync(institution_id: int):
    with rpc() as proxy:
        proxy.queues.resync_facts(institution_id)
    back = request.form.get("volver") == "tablero"
    return redirect(url_for(".board" if back else ".strategies", institucion=institution_id,
                            done="resynced"))


@bp.post("/instituciones/<int:institution_id>/reconstruir")
@auth.permission_required("queues.manage")
def rebuild(institution_id: int):
    with rpc() as proxy:
        proxy.queues.rebuild_queues(institution_id)
    return redirect(url_for(".board", institucion=institution_id, done="rebuilt"))
