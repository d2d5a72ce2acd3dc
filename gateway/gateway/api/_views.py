"""How every API view reads its request and writes its answer, written once.

Bodies: ``body()`` is the JSON body a view's ``@blp.arguments`` has already checked;
``sent_body()`` the body of a view that only documents it (the service loads it), a
malformed one answering 400; either carries the ``Idempotency-Key`` header as
``idempotency_key`` through ``with_idempotency_key``.

Answers: a view returns what the service answered; ``AnswerJSON`` (the app's JSON
provider) writes what kombu hands back as Python values the way the services' own
schemas dump them: timestamps and dates in ISO 8601, amounts as decimal text.

Query strings are read one way on every endpoint: as text, each value turned into what its
schema field holds where text cannot say it (integers), then validated by the same schema
the service loads. A strict integer field (one that refuses ``"2"`` in a JSON body) thus
reads ``?institution_id=2`` as the number 2, both here (webargs) and in the service, which
gets ``query_args(schema)``: the schema's own fields only, integers as numbers, lists as
every value given.
"""
from __future__ import annotations

import re
from datetime import date, datetime

import flask_smorest
from flask import request
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict

IDEMPOTENCY_HEADER = "Idempotency-Key"

_INTEGER = re.compile(r"^[+-]?\d{1,30}$")


def _typed(field: fields.Field | None, value: str):
    if isinstance(field, fields.List):
        field = field.inner
    if isinstance(field, fields.Integer) and _INTEGER.match(value.strip()):
        return int(value)
    return value


def _by_key(schema: Schema) -> dict:
    return {field.data_key or name: field for name, field in schema.fields.items()}


def typed_args(args: MultiDict, schema: Schema) -> MultiDict:
    """``args`` with every integer field's values as numbers (others untouched)."""
    known = _by_key(schema)
    return MultiDict([(key, _typed(known.get(key), value))
                      for key, value in args.items(multi=True)])


def query_args(schema_cls: type[Schema]) -> dict:
    """The query string as the service takes it (the service validates it again)."""
    known = _by_key(schema_cls())
    args = typed_args(request.args, schema_cls())
    return {key: args.getlist(key) if isinstance(field, fields.List) else args[key]
            for key, field in known.items() if key in args}


class QueryParser(FlaskParser):
    def load_querystring(self, req, schema):
        return self._makeproxy(typed_args(req.args, schema), schema)


class Blueprint(flask_smorest.Blueprint):
    """Every API blueprint: arguments in the query string read by ``QueryParser``."""

    ARGUMENTS_PARSER = QueryParser()


# --- bodies -----------------------------------------------------------------------------------

def body() -> dict:
    """The JSON body, already checked by the view's ``@blp.arguments`` schema."""
    return request.get_json(silent=True) or {}


def with_idempotency_key(data):
    """``data`` with the ``Idempotency-Key`` header, if any, as its ``idempotency_key``."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if key and isinstance(data, dict):
        data["idempotency_key"] = key
    return data


def sent_body():
    """The JSON body as sent, for a service that validates it, with its idempotency key.
    A malformed one answers 400, as a loaded one would."""
    return with_idempotency_key(request.get_json() if request.is_json else {})


# --- answers ----------------------------------------------------------------------------------

class AnswerJSON(DefaultJSONProvider):
    """Dates and timestamps as ISO 8601 (Flask's default would write HTTP dates);
    decimals are already written as text by Flask."""

    @staticmethod
    def default(o):
        if isinstance(o, (datetime, date)):
            return o.isoformat()
        return DefaultJSONProvider.default(o)
