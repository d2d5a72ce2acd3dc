"""The OpenAPI document says what the gateway answers (errors, money), without a broker.

The fuzz test (tests/e2e/test_openapi_fuzz.py) checks real answers against the spec;
these check the rules that make it so, on every operation.
"""
import pytest
from marshmallow import fields

from gateway.app import create_app

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def app():
    return create_app(testing=True)


@pytest.fixture(scope="module")
def spec(app):
    return app.test_client().get("/api/v1/openapi.json").json


def _resolve(spec, item):
    while "$ref" in item:
        section, kind, name = item["$ref"].lstrip("#/").split("/")
        item = spec[section][kind][name]
    return item


def _operations(spec):
    for path, operations in spec["paths"].items():
        for method in METHODS:
            if method in operations:
                yield f"{method.upper()} {path}", operations[method]


def test_the_documented_error_body_is_the_one_answered(app, spec):
    answered = app.test_client().get("/api/v1/no-such-thing").json
    body = spec["components"]["schemas"]["ErrorResponse"]
    assert body["required"] == ["error"] and body["additionalProperties"] is False
    detail = _resolve(spec, body["properties"]["error"])
    assert set(detail["required"]) == set(detail["properties"]) == set(answered["error"])
    assert detail["additionalProperties"] is False


def test_every_error_response_of_every_operation_has_that_body(spec):
    checked = 0
    for name, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status != "default" and int(status) < 400:
                continue
            response = _resolve(spec, response)
            if name == "GET /api/v1/system/health" and status == "503":
                continue    # the health report itself, with the failing services
            if name == "GET /ics/{token}.ics" and status == "200":
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (name, status)
            checked += 1
    assert checked > 900


def test_each_operation_documents_the_statuses_it_can_answer(spec):
    for name, operation in _operations(spec):
        statuses = set(operation["responses"])
        assert {"default", "503"} <= statuses, name
        if operation.get("security") != []:
            assert {"401", "403"} <= statuses, name
        if "requestBody" in operation:
            assert {"400", "413", "415", "422"} <= statuses, name
    login = dict(_operations(spec))["POST /api/v1/auth/token"]
    assert login["security"] == [] and {"401", "429"} <= set(login["responses"])
    assert "Retry-After" in _resolve(spec, login["responses"]["429"])["headers"]


def test_money_is_documented_as_the_decimal_strings_answered(app, spec):
    """Every ``Decimal(as_string=True)`` field of every documented schema."""
    converter = app.extensions["recaudo.api"].ma_plugin.converter
    money = 0
    for key, name in converter.refs.items():
        for field_name, field in key[0]().fields.items():
            if isinstance(field, fields.Decimal) and field.as_string:
                documented = spec["components"]["schemas"][name]["properties"][
                    field.data_key or field_name]
                assert documented["type"] == "string", (name, field_name)
                assert documented["format"] == "decimal" and documented["pattern"], name
                money += 1
    assert money >= 10
