"""The supervisors' board: each queue of the active strategy with its accounts, agents
and figures; freezing a queue, and moving a collector's accounts to another."""
from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _

from recaudo_common.errors import InvalidInput

from ... import auth
from .._common import is_htmx, to_int
from ...rpc import rpc
from . import _chosen_institution, _institutions, _teams, bp
from .editor import flat_problems, readable

def _board_rows(proxy, strategy: dict, team_names: dict) -> list[dict]:
    rows = proxy.queues.queue_board(strategy["id"])
    for row in rows:
        row["team"] = team_names.get(row["team_id"], f"#{row['team_id']}")
    return rows


def _board_page(institution_wanted, reassign_problem: str | None = None, status: int = 200):
    with rpc() as proxy:
        institutions = _institutions(proxy)
        institution = _chosen_institution(institutions, institution_wanted)
        items = proxy.queues.list_strategies(institution["id"]) if institution else []
        active = next((s for s in items if s["state"] == "active"), None)
        teams = _teams(proxy)
        team_names = {t["id"]: t["name"] for t in teams}
        boards = []
        if active:
            boards.append((active, _board_rows(proxy, active, team_names), False))
            challenger = next((s for s in items if s["id"] == active["challenger_id"]), None)
            if challenger and active["challenger_share"]:
                boards.append((challenger, _board_rows(proxy, challenger, team_names), True))
    agents = sorted({m["id"]: m for t in teams for m in t["members"]}.values(),
                    key=lambda m: m["display_name"])
    return render_template("queues/board.html", institutions=institutions,
                           institution=institution, active=active, boards=boards,
                           agents=agents, section="board", reassign_problem=reassign_problem,
                           reassign_values=request.form if reassign_problem else {}), status


@bp.get("/tablero")
@auth.permission_required("queues.manage")
def board():
    return _board_page(request.args.get("institucion"))


@bp.post("/<int:queue_id>/congelar")
@auth.permission_required("queues.manage")
def freeze(queue_id: int):
    frozen = request.form.get("frozen") == "1"
    with rpc() as proxy:
        proxy.queues.freeze_queue(queue_id, frozen)
        if is_htmx():
            strategy_id = to_int(request.form.get("estrategia"))
            team_names = {t["id"]: t["name"] for t in _teams(proxy)}
            current = proxy.queues.get_strategy(strategy_id)
            row = next((r for r in _board_rows(proxy, current, team_names)
                        if r["queue_id"] == queue_id), None)
            if row is None:
                abort(404)
            return render_template("queues/_board_row.html", row=row, strategy=current,
                                   institution_id=current["institution_id"])
    return redirect(url_for(".board", institucion=to_int(request.form.get("institucion")),
                            done="frozen" if frozen else "unfrozen"))


@bp.post("/tablero/reasignar")
@auth.permission_required("queues.manage")
def reassign():
    institution_id = to_int(request.form.get("institucion"))
    source = to_int(request.form.get("from_agent_id"))
    target = to_int(request.form.get("to_agent_id"))
    problem = None
    if source is None:
        problem = _("Elija al gestor que entrega sus cuentas.")
    elif source == target:
        problem = _("Elija a otro gestor para recibirlas.")
    else:
        with rpc() as proxy:
            try:
                moved = proxy.queues.reassign_agent({"from_agent_id": source,
                                                     "to_agent_id": target})["moved"]
            except InvalidInput as exc:
                problem = " ".join(readable(m) for ms in flat_problems(exc.fields).values()
                                   for m in ms) or exc.message
    if problem is not None:
        return _board_page(institution_id, problem, 422)
    return redirect(url_for(".board", institucion=institution_id, done="reassigned", n=moved))
