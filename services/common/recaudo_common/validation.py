"""Loading RPC input through marshmallow schemas, with errors every caller understands."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from .errors import InvalidInput


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
