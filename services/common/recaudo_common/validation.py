"""Loading RPC input through marshmallow schemas, with errors every caller understands.

Every input schema derives from this module's ``Schema``: it bounds each integer field
(and each integer in a list) to the PostgreSQL column it ends in, so a number out of
range answers 422 naming the field instead of a database error. Which integers are
64-bit is decided by name once, in ``BIGINT_NAMES`` (a test checks it against every
service's models); every other integer is PostgreSQL's 32-bit ``integer``.
"""
from __future__ import annotations

import marshmallow
from marshmallow import RAISE, ValidationError, fields, pre_load, validate

from .errors import InvalidInput

INT4 = (-(2 ** 31), 2 ** 31 - 1)
INT8 = (-(2 ** 63), 2 ** 63 - 1)

#: ids stored as ``bigint``: those of the bulk tables and what refers to them; every
#: other integer is an ``integer`` (or has a narrower range of its own, like sizes)
BIGINT_NAMES = frozenset({
    "account_id", "debtor_id", "activity_id", "corrects_id", "promise_id", "dispute_id",
    "item_id", "movement_id", "document_id", "version_id", "link_id", "access_id",
    "message_id", "outbound_id", "inbound_id", "job_id", "import_job_id", "problem_id",
    "phone_id", "email_id", "address_id", "guarantor_id", "contact_id", "delivery_id",
    "notification_id", "document_version_id"})

OUT_OF_RANGE = "Fuera de rango: entre {min} y {max}"


def int_range(name: str | None) -> tuple[int, int]:
    """The (lowest, highest) value the integer called ``name`` may take."""
    return INT8 if name in BIGINT_NAMES else INT4


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") else name


def bound_integers(name: str, field: fields.Field) -> None:
    """Add the column's range to ``field`` (an integer, or a list of integers) unless a
    narrower one is already there."""
    if isinstance(field, fields.List):
        bound_integers(_singular(name), field.inner)
        return
    if not isinstance(field, fields.Integer):
        return
    low, high = int_range(name)
    for rule in field.validators:
        if isinstance(rule, validate.Range) and rule.min is not None and rule.max is not None \
                and rule.min >= low and rule.max <= high:
            return
    field.validators = [*field.validators, validate.Range(min=low, max=high, error=OUT_OF_RANGE)]


class Schema(marshmallow.Schema):
    """The base of every input schema: integers bounded to their column's range."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        bound_integers(field_obj.data_key or field_name, field_obj)


def load(schema: Schema, data, *, partial: bool = False) -> dict:
    """``schema.load(data)`` or ``InvalidInput`` naming each field and its problems."""
    if not isinstance(data, dict):
        raise InvalidInput("Se esperaba un objeto", {"_schema": ["Se esperaba un objeto"]})
    try:
        return schema.load(data, partial=partial, unknown=RAISE)
    except ValidationError as err:
        messages = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
        raise InvalidInput("Datos inválidos", messages) from None


class PageQuery(Schema):
    """The paging every list RPC accepts."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class Override(Schema):
    """An administrator's reason to contact a debtor although the contact policy refuses
    (``contact_policy.enforce``): one schema for every channel, kept with the contact."""

    justification = fields.String(required=True, validate=validate.Length(
        min=10, max=2000, error="Entre 10 y 2000 caracteres"))

    @pre_load
    def _strip(self, data, **_):
        """Blanks around the reason do not count towards its length."""
        if isinstance(data, dict) and isinstance(data.get("justification"), str):
            data = {**data, "justification": data["justification"].strip()}
        return data


def page_of(items: list, total: int, page: int, per_page: int) -> dict:
    return {"items": items, "total": total, "page": page, "per_page": per_page,
            "pages": (total + per_page - 1) // per_page}


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """The schema of a ``page_of`` answer whose items are ``item_schema`` (one per list,
    named for OpenAPI)."""
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema)), "total": fields.Integer(),
        "page": fields.Integer(), "per_page": fields.Integer(), "pages": fields.Integer()})
