"""Strategy conditions and sort orders, compiled to parameterised SQL.

A condition tree is data an admin edits: ``{"all": [...]}`` or ``{"any": [...]}``
of leaves ``{"field", "op", "value"}`` (or nested groups). Fields and operators come
from the whitelists of the contract (``contracts.FIELDS``, ``OPERATORS``, ``SORTABLE``;
``contracts.condition_problems`` answers every problem at once, with its path, for the editor) and
values are bound parameters, so user text never becomes SQL. ``compile_condition`` and
``compile_sort`` build SQLAlchemy expressions over the ``account_facts`` table.
"""
from __future__ import annotations

from sqlalchemy import and_, cast, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from .contracts import FIELDS, SORTABLE, coerce
from .models import AccountFacts as F


def _days_since(column):
    return cast(func.extract("day", func.now() - column), F.days_past_due.type)


def _days_until(column):
    return column - func.current_date()


#: the SQL expression over account_facts each condition field reads
COLUMNS = {
    "stage": F.stage,
    "status_id": F.status_id,
    "days_past_due": F.days_past_due,
    "balance": F.balance,
    "overdue_amount": F.overdue_amount,
    "product": F.product,
    "state": F.state,
    "time_zone": F.time_zone,
    "last_result_code": F.last_result_code,
    "days_since_last_contact": _days_since(F.last_contact_at),
    "days_to_next_due": _days_until(F.next_due_date),
    "open_promise": F.open_promise,
    "broken_promise": F.broken_promise,
    "open_dispute": F.open_dispute,
    "do_not_contact": F.do_not_contact,
}


def compile_condition(tree) -> ColumnElement:
    """SQL for a *validated* condition tree; an empty group matches everything."""
    if "all" in tree:
        parts = [compile_condition(c) for c in tree["all"]]
        return and_(true(), *parts)
    if "any" in tree:
        parts = [compile_condition(c) for c in tree["any"]]
        return or_(false(), *parts) if parts else true()
    field = FIELDS[tree["field"]]
    column, op = COLUMNS[tree["field"]], tree["op"]
    if op == "is_set":
        return column.isnot(None)
    if op == "is_not_set":
        return column.is_(None)
    value = tree.get("value")
    if op == "between":
        low, high = (coerce(field.kind, v) for v in value)
        return column.between(literal(low), literal(high))
    if op in ("in", "not_in"):
        values = [coerce(field.kind, v) for v in value]
        return column.in_(values) if op == "in" else not_(func.coalesce(column.in_(values), False))
    value = coerce(field.kind, value)
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


def compile_sort(sort) -> list:
    columns = {**{name: COLUMNS[name] for name in SORTABLE if name in COLUMNS},
               "account_id": F.account_id}
    order = []
    for item in sort:
        column = columns[item["field"]]
        order.append(column.asc().nulls_last() if item.get("direction") == "asc"
                     else column.desc().nulls_last())
    return order + [F.account_id.asc()]
