"""The conditions a queue or a campaign selects accounts by: the service's catalogue of
fields and operators with labels in the user's language, and a condition row as typed in
an editor (``field``, ``op``, ``value`` as text) turned into the condition the service
takes: numbers as numbers, yes/no words as booleans, a choice's label as its code, lists
and ranges split where the typist separated them.
"""
from __future__ import annotations

import re

from .._common import N_, label_of

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


def value_text(value) -> str:
    """A stored condition value as the editor's text box shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value_text(v) for v in value)
    return str(value)


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


def condition(row: dict, catalogue: Catalogue) -> dict:
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
