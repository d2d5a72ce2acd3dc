"""The collection queues' screens: the strategy editor (queues in order, each with its
conditions, sort, team and assignment policy; champion/challenger), the simulation and
application of a strategy, the supervisors' board, and the collectors' "Siguiente
cuenta" button and worklist.

The editor is one server-rendered form: adding, removing or moving a queue, a
condition or a sort criterion posts the form with an ``action`` and the page comes
back with the change and nothing saved (htmx swaps only the editor, so the page does
not jump; without JavaScript the whole page reloads). "Guardar" sends the strategy
to the queues service, which validates it and answers each problem with its path
(``queues.0.team_id``, ``queues.0.conditions``…): they are shown next to the queue
and field they belong to. The service enforces permissions and institution scope;
these views collect forms and shape the answers.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal

from flask import (Blueprint, abort, g, make_response, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.routing import BuildError

from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied

from .. import auth, timefmt
from . import error_pages
from ._common import N_, alert_error_page, is_htmx, label_of, page_arg, to_int, url_with
from ..errors import HTTP_STATUS
from ..rpc import rpc
from ..validation import localize

bp = Blueprint("queues_ui", __name__, url_prefix="/filas")


WORKLIST_PER_PAGE = 25
MAX_QUEUES = 30
MAX_CONDITIONS = 50
MAX_SORTS = 5
NEW_QUEUE_SORT = [{"field": "days_past_due", "direction": "desc"}]

#: the service's fields, operators and codes -> labels in the user's language (a field the
#: service adds later shows the service's own Spanish label until it is added here)
FIELD_LABELS = {
    "stage": N_("Etapa"), "status_id": N_("Estatus"), "days_past_due": N_("Días de atraso"),
    "balance": N_("Saldo"), "overdue_amount": N_("Monto vencido"), "product": N_("Producto"),
    "state": N_("Estado (región)"), "time_zone": N_("Zona horaria"),
    "last_result_code": N_("Último resultado"),
    "days_since_last_contact": N_("Días desde el último contacto"),
    "days_to_next_due": N_("Días al próximo vencimiento"),
    "open_promise": N_("Promesa vigente"), "broken_promise": N_("Promesa incumplida"),
    "open_dispute": N_("Aclaración abierta"), "do_not_contact": N_("No contactar"),
    "account_id": N_("Número de cuenta"),
}
OPERATOR_LABELS = {
    "eq": N_("igual a"), "ne": N_("distinto de"), "lt": N_("menor que"),
    "lte": N_("menor o igual que"), "gt": N_("mayor que"), "gte": N_("mayor o igual que"),
    "between": N_("entre"), "in": N_("en la lista"), "not_in": N_("fuera de la lista"),
    "is_set": N_("tiene valor"), "is_not_set": N_("no tiene valor"),
}
#: operators that compare order make no sense for text and yes/no fields
ORDERED_OPERATORS = {"lt", "lte", "gt", "gte", "between"}
NO_VALUE_OPERATORS = {"is_set", "is_not_set"}
LIST_OPERATORS = {"in", "not_in"}
CHOICE_LABELS = {"current": N_("Al corriente"), "delinquent": N_("Moroso"),
                 "litigation": N_("Litigio")}
POLICY_LABELS = {
    "round_robin": N_("Por turnos"),
    "balance_weighted": N_("Equilibrar saldos"),
    "capacity": N_("Según capacidad"),
    "manual": N_("Manual (conserva al gestor)"),
}
POLICY_HELP = {
    "round_robin": N_("Reparte las cuentas una a una entre los gestores del equipo, en orden de prioridad."),
    "balance_weighted": N_("Reparte para que cada gestor tenga un saldo total parecido."),
    "capacity": N_("Reparte en proporción a la capacidad de cada gestor."),
    "manual": N_("Cada cuenta conserva a su gestor; las nuevas quedan para el equipo."),
}
STATE_LABELS = {"draft": N_("Borrador"), "active": N_("Activa"), "archived": N_("Archivada")}
DIRECTION_LABELS = {"desc": N_("de mayor a menor"), "asc": N_("de menor a mayor")}
GROUP_LABELS = {"all": N_("Todas las condiciones (Y)"), "any": N_("Cualquiera de ellas (O)")}
TRUE_WORDS = {"true", "1", "si", "sí", "yes", "verdadero", "t", "s", "y"}
FALSE_WORDS = {"false", "0", "no", "falso", "f", "n"}

#: marshmallow's messages the editor says its own way (any other: ``validation.localize``)
SCHEMA_MESSAGES = {
    "Must be one of: round_robin, balance_weighted, capacity, manual.":
        N_("Elija una de las políticas de asignación."),
}
#: what a missing value means, per field of a queue
MISSING = {"queue.team_id": N_("Elija el equipo que trabaja esta fila."),
           "queue.name": N_("Escriba el nombre de la fila."),
           "name": N_("Escriba el nombre de la estrategia.")}

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


class Catalogue:
    """The service's condition catalogue with labels in the user's language."""

    def __init__(self, raw: dict):
        self.fields = [{**f, "label": label_of(FIELD_LABELS, f["name"], f.get("label"))}
                       for f in raw["fields"]]
        self.by_name = {f["name"]: f for f in self.fields}
        self.operators = [(code, label_of(OPERATOR_LABELS, code, label))
                          for code, label in raw["operators"].items()]
        self.sortable = [(name, label_of(FIELD_LABELS, name, self.by_name.get(name, {})
                                       .get("label"))) for name in raw["sortable"]]

    def choice(self, field: str, text: str) -> str:
        """A value of a field with choices: its code, also when typed as its label."""
        choices = self.by_name.get(field, {}).get("choices") or ()
        wanted = text.strip().lower()
        for code in choices:
            if wanted in (code.lower(), label_of(CHOICE_LABELS, code).lower(),
                          CHOICE_LABELS.get(code, code).lower()):
                return code
        return text.strip()

    def kind(self, field: str) -> str | None:
        return self.by_name.get(field, {}).get("kind")

    def operators_for(self, field: str) -> list[tuple[str, str]]:
        kind = self.kind(field)
        if kind in ("text", "bool"):
            allowed = [(c, l) for c, l in self.operators if c not in ORDERED_OPERATORS]
            if kind == "bool":
                allowed = [(c, l) for c, l in allowed if c in ("eq", "ne")]
            return allowed
        return self.operators


# --- the editor's draft: the form <-> the strategy the service takes ---------------------------

_QUEUE_KEY = re.compile(r"^q-(\d+)-(id|name|team_id|policy|group|extra)$")
_COND_KEY = re.compile(r"^q-(\d+)-c-(\d+)-(field|op|value)$")
_SORT_KEY = re.compile(r"^q-(\d+)-s-(\d+)-(field|direction)$")
_ROW_PATH = re.compile(r"^conditions\.(?:all|any)\[(\d+)\]")


def _new_queue(number: int) -> dict:
    return {"id": None, "name": _("Fila %(n)s", n=number), "team_id": None,
            "policy": "round_robin", "group": "all", "conditions": [],
            "sort": [dict(s) for s in NEW_QUEUE_SORT], "extra": []}


def _value_text(value) -> str:
    """A stored condition value as the editor's text box shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_value_text(v) for v in value)
    return str(value)


def draft_from_strategy(strategy: dict) -> dict:
    queues = []
    for q in strategy["queues"]:
        tree = q["conditions"] or {"all": []}
        group = "any" if "any" in tree else "all"
        children = tree.get(group) if ("all" in tree or "any" in tree) else [tree]
        leaves = [c for c in children or [] if "field" in c]
        # nested groups (the API accepts them) are kept as they are, shown as a note
        nested = [c for c in children or [] if "field" not in c]
        queues.append({
            "id": q["id"], "name": q["name"], "team_id": q["team_id"], "policy": q["policy"],
            "group": group, "extra": nested,
            "conditions": [{"field": c.get("field", ""), "op": c.get("op", ""),
                            "value": _value_text(c.get("value"))} for c in leaves],
            "sort": [{"field": s.get("field", ""), "direction": s.get("direction", "desc")}
                     for s in q["sort"]]})
    return {"name": strategy["name"], "institution_id": strategy["institution_id"],
            "challenger_id": strategy["challenger_id"],
            "challenger_share": strategy["challenger_share"], "queues": queues}


def draft_from_form(form, institution_id: int) -> dict:
    queues: dict[int, dict] = {}

    def queue(i):
        return queues.setdefault(i, {"id": None, "name": "", "team_id": None,
                                     "policy": "round_robin", "group": "all", "extra": [],
                                     "_conditions": {}, "_sort": {}})

    for key in form.keys():
        value = form.get(key, "")
        if match := _QUEUE_KEY.match(key):
            i, name = int(match[1]), match[2]
            if name in ("id", "team_id"):
                queue(i)[name] = to_int(value, value.strip() or None)
            elif name == "extra":
                try:
                    extra = json.loads(value) if value else []
                except ValueError:
                    extra = []
                queue(i)["extra"] = extra if isinstance(extra, list) else []
            elif name == "group":
                queue(i)["group"] = "any" if value == "any" else "all"
            else:
                queue(i)[name] = value.strip()
        elif match := _COND_KEY.match(key):
            queue(int(match[1]))["_conditions"].setdefault(int(match[2]), {})[match[3]] = value
        elif match := _SORT_KEY.match(key):
            queue(int(match[1]))["_sort"].setdefault(int(match[2]), {})[match[3]] = value
    ordered = []
    for i in sorted(queues)[:MAX_QUEUES]:
        q = queues[i]
        q["conditions"] = [{"field": r.get("field", ""), "op": r.get("op", ""),
                            "value": r.get("value", "")}
                           for _, r in sorted(q.pop("_conditions").items())][:MAX_CONDITIONS]
        q["sort"] = [{"field": r.get("field", ""), "direction": r.get("direction", "desc")}
                     for _, r in sorted(q.pop("_sort").items())][:MAX_SORTS]
        ordered.append(q)
    share = to_int(form.get("challenger_share", "").strip() or 0, form.get("challenger_share"))
    return {"name": form.get("name", "").strip(), "institution_id": institution_id,
            "challenger_id": to_int(form.get("challenger_id")),
            "challenger_share": share, "queues": ordered}


def apply_action(draft: dict, action: str) -> dict:
    """An editing step (add, remove, move): the draft as it looks after it."""
    verb, _sep, rest = action.partition("-")
    args = [to_int(a) for a in rest.split("-")] if rest else []
    queues = draft["queues"]

    def at(i):
        return queues[i] if i is not None and 0 <= i < len(queues) else None

    if verb == "add_queue" and len(queues) < MAX_QUEUES:
        queue = _new_queue(len(queues) + 1)
        if queues:   # most strategies give every queue to the same team
            queue["team_id"] = queues[-1]["team_id"]
        queues.append(queue)
    elif verb == "remove_queue" and at(args[0]):
        queues.pop(args[0])
    elif verb in ("up", "down") and at(args[0]):
        j = args[0] + (-1 if verb == "up" else 1)
        if at(j):
            queues[args[0]], queues[j] = queues[j], queues[args[0]]
    elif verb == "add_cond" and at(args[0]) and len(queues[args[0]]["conditions"]) < MAX_CONDITIONS:
        queues[args[0]]["conditions"].append({"field": "", "op": "eq", "value": ""})
    elif verb == "remove_cond" and at(args[0]) and len(args) == 2 \
            and 0 <= (args[1] or 0) < len(queues[args[0]]["conditions"]):
        queues[args[0]]["conditions"].pop(args[1])
    elif verb == "drop_nested" and at(args[0]):
        queues[args[0]]["extra"] = []
    elif verb == "add_sort" and at(args[0]) and len(queues[args[0]]["sort"]) < MAX_SORTS:
        queues[args[0]]["sort"].append({"field": "", "direction": "desc"})
    elif verb == "remove_sort" and at(args[0]) and len(args) == 2 \
            and 0 <= (args[1] or 0) < len(queues[args[0]]["sort"]):
        queues[args[0]]["sort"].pop(args[1])
    return draft


def _scalar(kind: str | None, text: str):
    """One value as the field's type, when it reads as one; else the text as typed (the
    service then says what is wrong with it)."""
    text = text.strip()
    if kind == "int":
        return int(text) if re.fullmatch(r"-?\d{1,12}", text) else text
    if kind == "money":
        return text.replace("$", "").replace(",", "").replace(" ", "")
    if kind == "bool":
        lowered = text.lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
    return text


def _condition(row: dict, catalogue: Catalogue) -> dict:
    kind, op, text = catalogue.kind(row["field"]), row["op"], row["value"] or ""
    leaf = {"field": row["field"], "op": op}
    if op in NO_VALUE_OPERATORS:
        return leaf
    if catalogue.by_name.get(row["field"], {}).get("choices"):
        parts = [catalogue.choice(row["field"], p) for p in text.split(",") if p.strip()]
        leaf["value"] = parts if op in LIST_OPERATORS or op == "between" else \
            catalogue.choice(row["field"], text)
        return leaf
    if op in LIST_OPERATORS:
        leaf["value"] = [_scalar(kind, part) for part in text.split(",") if part.strip()]
    elif op == "between":
        separator = r"\s*(?:;|\s+a\s+|\s+y\s+|\s+to\s+|\s+and\s+)\s*" if kind == "money" \
            else r"\s*(?:,|;|\s+a\s+|\s+y\s+|\s+to\s+|\s+and\s+)\s*"
        leaf["value"] = [_scalar(kind, part) for part in re.split(separator, text.strip())
                         if part.strip()]
    else:
        leaf["value"] = _scalar(kind, text)
    return leaf


def payload_of(draft: dict, catalogue: Catalogue) -> tuple[dict, list[list[int]]]:
    """The strategy as ``save_strategy`` takes it, and per queue which editor row each
    condition sent came from (the service's paths count only the rows sent)."""
    queues, origins = [], []
    for q in draft["queues"]:
        rows = [(k, r) for k, r in enumerate(q["conditions"]) if r["field"]]
        origins.append([k for k, _r in rows])
        queues.append({
            "name": q["name"],
            "conditions": {q["group"]: [_condition(r, catalogue) for _k, r in rows]
                           + list(q["extra"])},
            "sort": [{"field": s["field"], "direction": s["direction"]}
                     for s in q["sort"] if s["field"]],
            "team_id": q["team_id"],
            "policy": q["policy"]})
    return {"institution_id": draft["institution_id"], "name": draft["name"],
            "queues": queues, "challenger_id": draft["challenger_id"],
            "challenger_share": draft["challenger_share"]}, origins


def _readable(message: str, field: str = "") -> str:
    if message in ("Missing data for required field.", "Field may not be null.",
                   "Shorter than minimum length 1.") and field in MISSING:
        return _(MISSING[field])
    return _(SCHEMA_MESSAGES[message]) if message in SCHEMA_MESSAGES else localize(message)


def _flat(problems, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested problems (``{"queues": {"0": {"name": [...]}}}``) and the
    service's dotted ones (``"queues.0.team_id"``) as one path -> messages."""
    out: dict[str, list[str]] = {}
    if isinstance(problems, dict):
        for key, nested in problems.items():
            for path, messages in _flat(nested, f"{prefix}.{key}" if prefix else str(key)).items():
                out.setdefault(path, []).extend(messages)
    elif isinstance(problems, (list, tuple)):
        for nested in problems:
            for path, messages in _flat(nested, prefix).items():
                out.setdefault(path, []).extend(messages)
    else:
        out.setdefault(prefix, []).append(str(problems))
    return out


class Problems:
    """Where the service's problems go in the editor."""

    QUEUE_FIELDS = ("name", "team_id", "policy", "sort", "conditions")

    def __init__(self, message: str, fields: dict, origins: list[list[int]]):
        self.message = message
        self.top: dict[str, list[str]] = {}
        self.queues: dict[int, dict] = {}
        self.others: list[str] = []
        for path, messages in _flat(fields or {}).items():
            parts = path.split(".")
            in_queue = parts[0] == "queues" and len(parts) >= 3
            messages = [_readable(m, f"queue.{parts[2]}" if in_queue else path)
                        for m in messages]
            if parts[0] == "queues" and len(parts) >= 3 and parts[1].isdigit():
                i, field = int(parts[1]), parts[2]
                slot = self.queues.setdefault(i, {"rows": {}})
                if field == "conditions":
                    for text in messages:
                        self._condition_problem(slot, text, origins[i] if i < len(origins) else [])
                elif field in self.QUEUE_FIELDS:
                    slot.setdefault(field, []).extend(messages)
                else:
                    slot.setdefault("other", []).extend(messages)
            elif path in ("name", "challenger_id", "challenger_share", "queues"):
                self.top.setdefault(path, []).extend(messages)
            else:
                self.others.extend(messages if path in ("", "_schema")
                                   else [f"{path}: {m}" for m in messages])

    @staticmethod
    def _condition_problem(slot: dict, text: str, origin: list[int]) -> None:
        """``conditions.all[2]: campo desconocido`` -> next to the editor's row it came from."""
        path, _sep, problem = text.partition(": ")
        match = _ROW_PATH.match(path)
        if match and problem:
            sent = int(match[1])
            if sent < len(origin) and path == match[0]:
                slot["rows"].setdefault(origin[sent], []).append(problem)
                return
        slot.setdefault("conditions", []).append(text)

    def queue(self, i: int) -> dict:
        return self.queues.get(i, {"rows": {}})


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


# --- pages: strategies ---------------------------------------------------------------------------

@bp.get("/")
@auth.login_required
def index():
    if "queues.manage" in g.user["permissions"]:
        return redirect(url_for(".strategies"))
    if "queues.work" in g.user["permissions"]:
        return redirect(url_for(".worklist"))
    abort(403)


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
                     "challenger_share": 0, "queues": [_new_queue(1)]}
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


# --- pages: the supervisors' board --------------------------------------------------------------

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
                problem = " ".join(_readable(m) for ms in _flat(exc.fields).values()
                                   for m in ms) or exc.message
    if problem is not None:
        return _board_page(institution_id, problem, 422)
    return redirect(url_for(".board", institucion=institution_id, done="reassigned", n=moved))


# --- pages: working the queue -------------------------------------------------------------------

@bp.post("/siguiente")
@auth.permission_required("queues.work")
def next_account():
    """Lease the next account and open its debtor; or a friendly "nothing now"."""
    with rpc() as proxy:
        lease = proxy.queues.next_account()
        if lease is None:
            return render_template("queues/next_empty.html", **work_outlook(proxy))
    return redirect(debtor_url(lease["debtor_id"], lease["account_id"], lease["queue_id"]))


def work_outlook(proxy) -> dict:
    """What the collector can do when the pull has nothing now (also on the home page):
    why (the queues' outlook: outside the contact hours and when they open, callbacks
    later, disputes, rest) and what else waits (today's agenda)."""
    outlook = proxy.queues.pull_outlook()
    agenda = []
    if "activities.read" in g.user["permissions"]:
        zone = str(timefmt.reader_zone())
        day = timefmt.institution_today(zone).isoformat()
        agenda = [item for item in proxy.activities.agenda_for({
            "date_from": day, "date_to": day, "agent_id": g.user["id"],
            "time_zone": zone}) if not item.get("done_at")]
    return {"outlook": outlook, "agenda_today": agenda}


@bp.post("/liberar/<int:account_id>")
@auth.permission_required("queues.work")
def release(account_id: int):
    try:
        with rpc() as proxy:
            proxy.queues.release_account(account_id)
    except NotFound:
        return redirect(url_for(".worklist", done="not_held"))
    return redirect(url_for(".worklist", done="released"))


@bp.get("/mi-lista")
@auth.permission_required("queues.work")
def worklist():
    with rpc() as proxy:
        page = proxy.queues.my_worklist({"page": page_arg(), "per_page": WORKLIST_PER_PAGE})
    return render_template("queues/worklist.html", page=page, section="worklist")
