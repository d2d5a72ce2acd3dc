"""Strategy conditions and sort orders, compiled to parameterised SQL.

A condition tree is data an admin edits: ``{"all": [...]}`` or ``{"any": [...]}``
of leaves ``{"field", "op", "value"}`` (or nested groups). Fields and operators come
from the whitelists below and values are bound parameters, so user text never
becomes SQL. ``validate`` answers every problem at once, with its path, for the
editor; ``compile_condition`` and ``compile_sort`` build SQLAlchemy expressions over
the ``account_facts`` table.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, cast, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from .models import AccountFacts as F


@dataclass(frozen=True)
class Field:
    label: str
    kind: str            # int | money | text | bool | date_days
    column: object       # SQL expression over account_facts
    choices: tuple = ()


def _days_since(column):
    return cast(func.extract("day", func.now() - column), F.days_past_due.type)


def _days_until(column):
    return column - func.current_date()


FIELDS: dict[str, Field] = {
    "stage": Field("Etapa", "text", F.stage, ("current", "delinquent", "litigation")),
    "status_id": Field("Estatus", "int", F.status_id),
    "days_past_due": Field("Días de atraso", "int", F.days_past_due),
    "balance": Field("Saldo", "money", F.balance),
    "overdue_amount": Field("Monto vencido", "money", F.overdue_amount),
    "product": Field("Producto", "text", F.product),
    "state": Field("Estado (región)", "text", F.state),
    "time_zone": Field("Zona horaria", "text", F.time_zone),
    "last_result_code": Field("Último resultado", "text", F.last_result_code),
    "days_since_last_contact": Field("Días desde el último contacto", "int",
                                     _days_since(F.last_contact_at)),
    "days_to_next_due": Field("Días al próximo vencimiento", "int",
                              _days_until(F.next_due_date)),
    "open_promise": Field("Promesa vigente", "bool", F.open_promise),
    "broken_promise": Field("Promesa incumplida", "bool", F.broken_promise),
    "open_dispute": Field("Aclaración abierta", "bool", F.open_dispute),
    "do_not_contact": Field("No contactar", "bool", F.do_not_contact),
}

OPERATORS = {
    "eq": "igual a", "ne": "distinto de", "lt": "menor que", "lte": "menor o igual que",
    "gt": "mayor que", "gte": "mayor o igual que", "between": "entre", "in": "en la lista",
    "not_in": "fuera de la lista", "is_set": "tiene valor", "is_not_set": "no tiene valor",
}
_ORDERED = {"lt", "lte", "gt", "gte", "between"}
SORTABLE = ("days_past_due", "balance", "overdue_amount", "days_since_last_contact",
            "days_to_next_due", "account_id")
MAX_DEPTH = 4
MAX_LEAVES = 50


def _coerce(kind: str, value):
    """The value as the field's type, or raise ValueError."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError("debe ser verdadero o falso")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("debe ser un número entero")
        return int(value)
    if kind == "money":
        if isinstance(value, bool):
            raise ValueError("debe ser un monto")
        try:
            amount = Decimal(str(value))
            if not amount.is_finite():  # NaN and Infinity are not amounts
                raise ValueError
            return amount.quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            raise ValueError("debe ser un monto") from None
    if not isinstance(value, str) or not value or len(value) > 100:
        raise ValueError("debe ser un texto de 1 a 100 caracteres")
    return value


def _leaf_problems(leaf: dict) -> list[str]:
    name, op = leaf.get("field"), leaf.get("op")
    field = FIELDS.get(name) if isinstance(name, str) else None
    if field is None:
        return [f"campo desconocido: {name!r}"]
    if not isinstance(op, str) or op not in OPERATORS:
        return [f"operador desconocido: {op!r}"]
    if op in ("is_set", "is_not_set"):
        return [] if "value" not in leaf or leaf["value"] is None else ["no lleva valor"]
    if op in _ORDERED and field.kind in ("text", "bool"):
        return [f"el operador {op} no aplica a {leaf['field']}"]
    value = leaf.get("value")
    values = value if op in ("in", "not_in", "between") else [value]
    if op == "between" and (not isinstance(value, list) or len(value) != 2):
        return ["entre requiere dos valores [desde, hasta]"]
    if op in ("in", "not_in") and (not isinstance(value, list) or not 1 <= len(value) <= 100):
        return ["la lista requiere de 1 a 100 valores"]
    try:
        coerced = [_coerce(field.kind, v) for v in values]
    except ValueError as exc:
        return [f"valor inválido para {leaf['field']}: {exc}"]
    if field.choices and any(v not in field.choices for v in coerced):
        return [f"valores permitidos: {', '.join(field.choices)}"]
    if op == "between" and coerced[0] > coerced[1]:
        return ["el inicio del rango es mayor que el final"]
    return []


def validate(tree, path: str = "conditions", depth: int = 0, counter=None) -> dict[str, list[str]]:
    """Every problem of a condition tree, keyed by its path (empty when valid)."""
    counter = counter if counter is not None else [0]
    if not isinstance(tree, dict):
        return {path: ["se esperaba un objeto"]}
    if depth > MAX_DEPTH:
        return {path: [f"más de {MAX_DEPTH} niveles de anidación"]}
    groups = [k for k in ("all", "any") if k in tree]
    if groups:
        if len(tree) != 1 or not isinstance(tree[groups[0]], list):
            return {path: ['un grupo es {"all": [...]} o {"any": [...]}']}
        problems: dict[str, list[str]] = {}
        for i, child in enumerate(tree[groups[0]]):
            problems.update(validate(child, f"{path}.{groups[0]}[{i}]", depth + 1, counter))
        return problems
    counter[0] += 1
    if counter[0] > MAX_LEAVES:
        return {path: [f"más de {MAX_LEAVES} condiciones"]}
    unknown = set(tree) - {"field", "op", "value"}
    if unknown:
        return {path: [f"claves desconocidas: {', '.join(sorted(unknown))}"]}
    problems = _leaf_problems(tree)
    return {path: problems} if problems else {}


def compile_condition(tree) -> ColumnElement:
    """SQL for a *validated* condition tree; an empty group matches everything."""
    if "all" in tree:
        parts = [compile_condition(c) for c in tree["all"]]
        return and_(true(), *parts)
    if "any" in tree:
        parts = [compile_condition(c) for c in tree["any"]]
        return or_(false(), *parts) if parts else true()
    field = FIELDS[tree["field"]]
    column, op = field.column, tree["op"]
    if op == "is_set":
        return column.isnot(None)
    if op == "is_not_set":
        return column.is_(None)
    value = tree.get("value")
    if op == "between":
        low, high = (_coerce(field.kind, v) for v in value)
        return column.between(literal(low), literal(high))
    if op in ("in", "not_in"):
        values = [_coerce(field.kind, v) for v in value]
        return column.in_(values) if op == "in" else not_(func.coalesce(column.in_(values), False))
    value = _coerce(field.kind, value)
    # only the chosen operator is built: SQLAlchemy refuses ``<`` against True/False
    return _COMPARISONS[op](column, value)


_COMPARISONS = {
    "eq": lambda column, value: column == value,
    "ne": lambda column, value: column.is_distinct_from(value),
    "lt": lambda column, value: column < value,
    "lte": lambda column, value: column <= value,
    "gt": lambda column, value: column > value,
    "gte": lambda column, value: column >= value,
}


def validate_sort(sort) -> list[str]:
    if not isinstance(sort, list) or not 1 <= len(sort) <= 5:
        return ["indique de 1 a 5 criterios de orden"]
    problems = []
    for item in sort:
        if (not isinstance(item, dict) or item.get("field") not in SORTABLE
                or item.get("direction", "desc") not in ("asc", "desc")
                or set(item) - {"field", "direction"}):
            problems.append(f"criterio inválido: {item!r}; campos: {', '.join(SORTABLE)}")
    return problems


def compile_sort(sort) -> list:
    columns = {**{name: FIELDS[name].column for name in SORTABLE if name in FIELDS},
               "account_id": F.account_id}
    order = []
    for item in sort:
        column = columns[item["field"]]
        order.append(column.asc().nulls_last() if item.get("direction") == "asc"
                     else column.desc().nulls_last())
    return order + [F.account_id.asc()]
