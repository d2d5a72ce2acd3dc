"""The checks every request passes before a view (``gateway.boundary``) and the integer
bounds every input schema carries (``recaudo_common.validation``), without a broker."""
import importlib
import re
from pathlib import Path

import pytest
from flask import Blueprint, jsonify, request
from marshmallow import fields
from sqlalchemy import BigInteger, Integer

from gateway.app import create_app
from gateway.boundary import MAX_JSON_DEPTH, json_problems, safe_next, text_problem, too_deep_at
from recaudo_common.validation import BIGINT_NAMES, INT4, INT8, Schema, int_range, load
from recaudo_common.errors import InvalidInput


@pytest.fixture
def client():
    app = create_app(testing=True)
    bp = Blueprint("echo", __name__)

    @bp.route("/echo/<int:user_id>/<int:account_id>", methods=["GET", "POST"])
    def echo(user_id, account_id):
        return jsonify({"args": request.args, "json": request.get_json(silent=True)})

    app.register_blueprint(bp)
    with app.test_request_context():
        yield app.test_client()


# --- text, numbers and nesting -----------------------------------------------------------

@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff"])
def test_text_that_cannot_be_stored_is_named(text):
    assert text_problem(text)


@pytest.mark.parametrize("text", ["", "Peña ñandú 💶", "línea\nnueva\ttab"])
def test_ordinary_text_passes(text):
    assert text_problem(text) is None


def test_json_problems_name_each_field_by_its_path(client):
    body = {"name": "ok\x00", "promise": {"amount": 2 ** 63}, "tags": ["\ud800"],
            "big": -(2 ** 63) - 1, "nan": float("nan"), "fine": [1, 2.5, True, None, "x"]}
    assert set(json_problems(body)) == {"name", "promise.amount", "tags.0", "big", "nan"}


def test_json_deeper_than_the_limit_is_refused_without_recursion(client):
    deep = inner = {}
    for _ in range(5000):        # far beyond the interpreter's recursion limit
        inner["x"] = {}
        inner = inner["x"]
    problems = json_problems({"conditions": deep})
    assert list(problems) == ["conditions" + ".x" * (MAX_JSON_DEPTH - 1)]
    assert json_problems({"a": [[[1]]]}) == {}


def test_json_too_deep_for_the_parser_is_named_by_where_it_goes_deep():
    body = '{"name": "x, [{", "queues": [{"sort": [], "conditions": ' + '{"all": [' * 600
    where = too_deep_at(body)
    assert where.startswith("queues.0.conditions.all.0.all.0")
    assert len(where.split(".")) == MAX_JSON_DEPTH
    assert too_deep_at("[" * 2000).startswith("0.0.0")
    assert too_deep_at('{"bad\\x": ' + "[" * 40).startswith("bad")


def test_a_nul_in_the_query_string_or_a_form_answers_422_naming_it(client):
    answer = client.get("/echo/1/1?q=%00")
    assert answer.status_code == 422
    assert answer.json["error"]["fields"] == {"q": [text_problem("\x00")]}
    answer = client.post("/echo/1/1", data={"display_name": "a\x00"})
    assert answer.status_code == 422 and list(answer.json["error"]["fields"]) == ["display_name"]


@pytest.mark.parametrize("body", [
    "[" * 1000 + "]" * 1000,                           # RecursionError in json.loads before
    '{"a": ' * 40 + "1" + "}" * 40,
    '{"username": "\\ud800"}', '{"username": "a\\u0000"}', '{"account_id": 123456789012345678901}',
])
def test_json_bodies_that_cannot_be_stored_answer_422(client, body):
    answer = client.post("/echo/1/1", data=body, content_type="application/json")
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "invalid_input" and answer.json["error"]["fields"]


def test_path_ids_beyond_their_column_answer_404_like_missing(client):
    assert client.get(f"/echo/{INT4[1]}/{INT8[1]}").status_code == 200
    answer = client.get(f"/echo/{INT4[1] + 1}/1")
    assert answer.status_code == 404 and list(answer.json["error"]["fields"]) == ["user_id"]
    assert client.get(f"/echo/1/{INT8[1] + 1}").status_code == 404
    # a text in the path no column can hold
    assert client.post("/api/v1/documents/uploads/a%00b/complete").status_code == 404


# --- redirect targets -----------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "//evil.example", "/\t/evil.example", "/\n/x", "/\r\n/x", "/\\evil.example",
    "\\\\evil.example", "https://evil.example/", "javascript:alert(1)", "/ /x", "", None,
    "cartera", "/\x00x", "/%09/ok" + "\x7f"])
def test_redirect_targets_off_site_or_unreadable_fall_back(target):
    assert safe_next(target, "/home") == "/home"


@pytest.mark.parametrize("target", ["/", "/cartera?q=juan&pagina=2", "/deudores/5#docs",
                                    "/%2F/x"])
def test_redirect_targets_on_site_are_kept(target):
    assert safe_next(target) == target


def test_the_language_switch_and_login_never_leave_the_site(client):
    for url in ("/idioma/es?next=/%09/evil.example", "/idioma/es?next=/%0A/x",
                "/idioma/es?next=/%5Cevil.example", "/login?next=/%09/evil.example"):
        answer = client.get(url)
        assert answer.status_code in (200, 302)
        assert not answer.headers.get("Location", "/").startswith("//"), url
        assert "\n" not in answer.headers.get("Location", "")


# --- integer bounds of every schema ------------------------------------------------------------

class _Sample(Schema):
    user_id = fields.Integer()
    account_id = fields.Integer()
    account_ids = fields.List(fields.Integer())
    dpd_min = fields.Integer()
    narrow = fields.Integer(validate=lambda v: v < 10)


def test_schema_integers_are_bounded_by_their_column():
    assert load(_Sample(), {"user_id": INT4[1], "account_id": INT8[1], "account_ids": [INT8[1]],
                            "dpd_min": "12"})
    for field, value in (("user_id", INT4[1] + 1), ("dpd_min", "99999999999"),
                         ("account_id", INT8[1] + 1), ("account_ids", [1, INT8[0] - 1]),
                         ("narrow", -(2 ** 40))):
        with pytest.raises(InvalidInput) as caught:
            load(_Sample(), {field: value})
        assert field in caught.value.fields


SERVICES = ("auth", "portfolio", "queues", "activities", "documents", "messaging", "reports")


def test_bigint_names_match_every_services_columns():
    """A column named like an id is ``bigint`` exactly when its name is in BIGINT_NAMES
    (else a big value would pass the schema and fail in the database, or a valid one be
    refused)."""
    wrong = []
    for service in SERVICES:
        models = importlib.import_module(f"{service}.models")
        for table in models.Base.metadata.tables.values():
            for column in table.columns:
                if isinstance(column.type, Integer) and column.name.endswith("_id") and \
                        isinstance(column.type, BigInteger) != (column.name in BIGINT_NAMES):
                    wrong.append(f"{table.fullname}.{column.name}")
    assert wrong == [], wrong
    assert int_range("institution_id") == INT4 and int_range("debtor_id") == INT8


def test_every_input_schema_derives_from_the_bounded_schema():
    """A schema made from marshmallow's own Schema would read integers without bounds."""
    root = Path(__file__).resolve().parents[2]
    allowed = {"services/common/recaudo_common/contracts.py",   # events, from our own services
               "gateway/gateway/api/_views.py"}                 # type hints only
    offenders = []
    for path in [*root.glob("services/*/*/*.py"), *root.glob("gateway/gateway/**/*.py")]:
        relative = str(path.relative_to(root))
        if relative in allowed or "/migrations/" in relative:
            continue
        if re.search(r"^from marshmallow import [^\n]*\bSchema\b",
                     path.read_text(encoding="utf-8"), re.M):
            offenders.append(relative)
    assert offenders == []
