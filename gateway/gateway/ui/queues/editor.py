"""The strategy editor's draft: the form as posted <-> the strategy the service takes.

The editor is one server-rendered form: adding, removing or moving a queue, a
condition or a sort criterion posts the form with an ``action`` and the page comes
back with the change and nothing saved. "Guardar" sends the strategy to the queues
service, which validates it and answers each problem with its path
(``queues.0.team_id``, ``queues.0.conditions``…); ``Problems`` puts each next to the
queue and field it belongs to. Nothing here asks a service: the pages are
``strategies.py``.
"""
from __future__ import annotations

import json
import re

from flask_babel import gettext as _

from .._common import N_, to_int
from ...validation import localize
from .conditions import Catalogue, condition, value_text

MAX_QUEUES = 30
MAX_CONDITIONS = 50
MAX_SORTS = 5
NEW_QUEUE_SORT = [{"field": "days_past_due", "direction": "desc"}]

#: marshmallow's messages the editor says its own way (any other: ``validation.localize``)
SCHEMA_MESSAGES = {
    "Must be one of: round_robin, balance_weighted, capacity, manual.":
        N_("Elija una de las políticas de asignación."),
}
#: what a missing value means, per field of a queue
MISSING = {"queue.team_id": N_("Elija el equipo que trabaja esta fila."),
           "queue.name": N_("Escriba el nombre de la fila."),
           "name": N_("Escriba el nombre de la estrategia.")}


# --- the editor's draft: the form <-> the strategy the service takes ---------------------------

_QUEUE_KEY = re.compile(r"^q-(\d+)-(id|name|team_id|policy|group|extra)$")
_COND_KEY = re.compile(r"^q-(\d+)-c-(\d+)-(field|op|value)$")
_SORT_KEY = re.compile(r"^q-(\d+)-s-(\d+)-(field|direction)$")
_ROW_PATH = re.compile(r"^conditions\.(?:all|any)\[(\d+)\]")


def new_queue(number: int) -> dict:
    return {"id": None, "name": _("Fila %(n)s", n=number), "team_id": None,
            "policy": "round_robin", "group": "all", "conditions": [],
            "sort": [dict(s) for s in NEW_QUEUE_SORT], "extra": []}


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
                            "value": value_text(c.get("value"))} for c in leaves],
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
        queue = new_queue(len(queues) + 1)
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


def payload_of(draft: dict, catalogue: Catalogue) -> tuple[dict, list[list[int]]]:
    """The strategy as ``save_strategy`` takes it, and per queue which editor row each
    condition sent came from (the service's paths count only the rows sent)."""
    queues, origins = [], []
    for q in draft["queues"]:
        rows = [(k, r) for k, r in enumerate(q["conditions"]) if r["field"]]
        origins.append([k for k, _r in rows])
        queues.append({
            "name": q["name"],
            "conditions": {q["group"]: [condition(r, catalogue) for _k, r in rows]
                           + list(q["extra"])},
            "sort": [{"field": s["field"], "direction": s["direction"]}
                     for s in q["sort"] if s["field"]],
            "team_id": q["team_id"],
            "policy": q["policy"]})
    return {"institution_id": draft["institution_id"], "name": draft["name"],
            "queues": queues, "challenger_id": draft["challenger_id"],
            "challenger_share": draft["challenger_share"]}, origins


def readable(message: str, field: str = "") -> str:
    if message in ("Missing data for required field.", "Field may not be null.",
                   "Shorter than minimum length 1.") and field in MISSING:
        return _(MISSING[field])
    return _(SCHEMA_MESSAGES[message]) if message in SCHEMA_MESSAGES else localize(message)


def flat_problems(problems, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested problems (``{"queues": {"0": {"name": [...]}}}``) and the
    service's dotted ones (``"queues.0.team_id"``) as one path -> messages."""
    out: dict[str, list[str]] = {}
    if isinstance(problems, dict):
        for key, nested in problems.items():
            for path, messages in flat_problems(nested, f"{prefix}.{key}" if prefix else str(key)).items():
                out.setdefault(path, []).extend(messages)
    elif isinstance(problems, (list, tuple)):
        for nested in problems:
            for path, messages in flat_problems(nested, prefix).items():
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
        for path, messages in flat_problems(fields or {}).items():
            parts = path.split(".")
            in_queue = parts[0] == "queues" and len(parts) >= 3
            messages = [readable(m, f"queue.{parts[2]}" if in_queue else path)
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
