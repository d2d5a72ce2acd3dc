"""The input every request must pass before any view sees it, checked once for every route
(API and UI): ids in the path within their column's range, text without NUL bytes or
lone surrogates (query string, form, JSON), JSON no deeper than ``MAX_JSON_DEPTH`` and
its numbers within PostgreSQL's ``bigint`` and finite; and the one check of a redirect
target (``safe_next``). A refusal is an ``InvalidInput`` (422) naming the field, or a
``NotFound`` for an id no row can have, answered like any other: JSON under ``/api/v1``,
a page in the UI.

Integers inside bodies and query strings are bounded by the schemas that read them
(``recaudo_common.validation.Schema``), which know each field's column.
"""
from __future__ import annotations

import json
import math
import re
from urllib.parse import urlsplit

from flask import request
from flask_babel import gettext as _

from recaudo_common.errors import InvalidInput, NotFound
from recaudo_common.validation import INT8, int_range

#: deeper JSON is refused (no legitimate body nests more than a few levels)
MAX_JSON_DEPTH = 32
#: characters a text may not hold: PostgreSQL cannot store NUL, UTF-8 cannot encode
#: a lone surrogate
_SURROGATES = range(0xD800, 0xE000)


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    if "\x00" in value:
        return _("El texto no puede contener el carácter NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _("El texto contiene caracteres inválidos (sustitutos UTF-16 sueltos)")
    return None


def _path(parent: str, key) -> str:
    return f"{parent}.{key}" if parent else str(key)


def json_problems(data) -> dict:
    """``{field path: [problem]}`` for every text, number and nesting the body may not
    hold; empty when it is fine. Walks with a stack, never recursion."""
    problems: dict[str, list[str]] = {}
    stack = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                problems.setdefault(path or "_schema", []).append(
                    _("Anidado a más de %(levels)s niveles", levels=MAX_JSON_DEPTH))
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                where = _path(path, key)
                if isinstance(key, str) and (problem := text_problem(key)):
                    problems.setdefault(where, []).append(problem)
                stack.append((item, where, depth + 1))
        elif isinstance(value, str):
            if problem := text_problem(value):
                problems.setdefault(path or "_schema", []).append(problem)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT8[0] <= value <= INT8[1]:
                problems.setdefault(path or "_schema", []).append(
                    _("Número fuera de rango: entre %(low)s y %(high)s", low=INT8[0], high=INT8[1]))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.setdefault(path or "_schema", []).append(_("Número inválido"))
    return problems


def _check_path_ids() -> None:
    """An integer in the path beyond its column's range, or a text no column can hold,
    names nothing: 404, like missing."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = int_range(name)
            if not low <= value <= high:
                raise NotFound(_("No encontrado"), {name: [_("No existe")]})
        elif isinstance(value, str) and text_problem(value):
            raise NotFound(_("No encontrado"), {name: [_("No existe")]})


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def too_deep_at(text: str) -> str:
    """The path where ``text`` (JSON too deep for the parser) first nests deeper than
    ``MAX_JSON_DEPTH``, read token by token without parsing."""
    stack: list[list] = []      # [kind, key or index, expecting a key]
    for token in _JSON_TOKEN.finditer(text):
        lexeme = token.group()
        top = stack[-1] if stack else None
        if lexeme in "{[":
            if len(stack) >= MAX_JSON_DEPTH:
                return ".".join(str(level[1]) for level in stack) or "_schema"
            stack.append(["object", "", True] if lexeme == "{" else ["array", 0, False])
        elif lexeme in "]}":
            if stack:
                stack.pop()
        elif lexeme == ",":
            if top and top[0] == "array":
                top[1] += 1
            elif top:
                top[2] = True
        elif lexeme == ":":
            if top:
                top[2] = False
        elif top and top[0] == "object" and top[2]:
            try:
                top[1] = json.loads(lexeme)
            except ValueError:     # an escape the parser would refuse: the raw text will do
                top[1] = lexeme[1:-1]
    return "_schema"


def _check_pairs(pairs) -> None:
    """Query-string or form ``(name, value)`` pairs: each problem under its name (a name
    that is itself unreadable under ``_schema``)."""
    problems: dict[str, list[str]] = {}
    for key, value in pairs:
        if problem := text_problem(key):
            problems.setdefault("_schema", []).append(problem)
        elif problem := text_problem(value):
            problems.setdefault(key, []).append(problem)
    if problems:
        raise InvalidInput(_("Datos inválidos"), problems)


def _check_json_body() -> None:
    if not request.is_json:
        return
    raw = request.get_data(cache=True)
    if not raw:
        return
    try:
        data = json.loads(raw)
    except RecursionError:
        where = too_deep_at(raw.decode("utf-8", "replace"))
        raise InvalidInput(_("Datos inválidos"), {where: [
            _("Anidado a más de %(levels)s niveles", levels=MAX_JSON_DEPTH)]}) from None
    except ValueError:
        return  # malformed JSON: the parser's own 400 says so
    if problems := json_problems(data):
        raise InvalidInput(_("Datos inválidos"), problems)


def check_request() -> None:
    """before_request of the whole app: the boundary checks above, in order of cost."""
    _check_path_ids()
    _check_pairs(request.args.items(multi=True))
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        _check_pairs(request.form.items(multi=True))
    _check_json_body()


def safe_next(target: str | None, default: str = "/") -> str:
    """``target`` if, as a browser reads it, it is a path of this site; else ``default``.

    Browsers drop tabs and line breaks inside a URL and read ``\\`` as ``/``, so
    ``/\\t/evil.example`` would be ``//evil.example``: a target with any control
    character, space or backslash is refused before it is looked at.
    """
    if not target or any(c <= " " or c == "\x7f" or c == "\\" for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def init_app(app) -> None:
    app.before_request(check_request)
