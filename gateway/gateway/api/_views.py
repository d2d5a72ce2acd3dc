"""Query strings read one way on every endpoint: as text, each value turned into what its
schema field holds where text cannot say it (integers), then validated by the same schema
the service loads. A strict integer field (one that refuses ``"2"`` in a JSON body) thus
reads ``?institution_id=2`` as the number 2, both here (webargs) and in the service, which
gets ``query_args(schema)``: the schema's own fields only, integers as numbers, lists as
every value given.
"""
from __future__ import annotations

import re

import flask_smorest
from flask import request
from marshmallow import Schema, fields
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict

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
