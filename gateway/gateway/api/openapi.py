"""What the OpenAPI document says beyond each view's own decorators, said once for every
operation: the error body as the gateway answers it, the error statuses each kind of
operation can answer, and money as the decimal strings the services dump.

A client generated from ``/api/v1/openapi.json`` must parse every answer; the schemathesis
test (tests/e2e/test_openapi_fuzz.py) checks that it can.
"""
from __future__ import annotations

from decimal import Decimal

from marshmallow import fields

from recaudo_common.validation import Schema

#: the services dump money as text ("1234.50"), never as a JSON number (no float rounding)
MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
MONEY_DESCRIPTION = ("Importe como texto decimal, p. ej. \"1234.50\" (nunca número JSON, para "
                     "no perder centavos).")


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={
        "description": "Código estable para programas: invalid_input, not_authenticated, "
                       "permission_denied, not_found, conflict, throttled, …"})
    message = fields.String(required=True, metadata={
        "description": "Mensaje para personas, en el idioma del usuario"})
    fields_ = fields.Dict(
        data_key="fields", required=True, keys=fields.String(), values=fields.Raw(),
        metadata={"description": "Por campo con problema: sus mensajes (una lista de textos, "
                                 "u objetos anidados para campos compuestos); vacío si no aplica"})


class ErrorResponse(Schema):
    """Every error the gateway answers: ``{"error": {"code", "message", "fields"}}``."""
    error = fields.Nested(ErrorDetail, required=True)


def decimal_as_string(converter, field, ret, **kwargs) -> dict:
    """apispec attribute function: a ``Decimal(as_string=True)`` field is a string."""
    if isinstance(field, fields.Decimal) and field.as_string:
        return {"type": "string", "format": "decimal", "pattern": MONEY_PATTERN,
                "description": ret.get("description", MONEY_DESCRIPTION)}
    # a number's bounds are numbers (the app's JSON writer would print a Decimal as text)
    return {key: int(ret[key]) if ret[key] == int(ret[key]) else float(ret[key])
            for key in ("minimum", "maximum") if isinstance(ret.get(key), Decimal)}


def file_response(description: str, *media_types: str, json_schema=None) -> dict:
    """A 200 that answers a file (and, when ``json_schema`` is given, JSON otherwise)."""
    content = {"application/json": {"schema": json_schema}} if json_schema else {}
    content.update({m.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                    for m in media_types})
    return {"description": description, "content": content}


RETRY_AFTER = {"description": "Segundos que hay que esperar antes de intentar de nuevo",
               "schema": {"type": "integer", "minimum": 0}}

#: the response components (flask-smorest registers one per HTTP status) an operation gets
AUTHENTICATED = ("UNAUTHORIZED", "FORBIDDEN")
WITH_OBJECTS = ("NOT_FOUND",)
WITH_BODY = ("BAD_REQUEST", "REQUEST_ENTITY_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE",
             "UNPROCESSABLE_ENTITY")
WITH_QUERY = ("UNPROCESSABLE_ENTITY",)
WRITES = ("CONFLICT",)
EVERY = ("SERVICE_UNAVAILABLE",)
STATUS = {"BAD_REQUEST": 400, "UNAUTHORIZED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404,
          "CONFLICT": 409, "REQUEST_ENTITY_TOO_LARGE": 413, "UNSUPPORTED_MEDIA_TYPE": 415,
          "UNPROCESSABLE_ENTITY": 422, "TOO_MANY_REQUESTS": 429, "SERVICE_UNAVAILABLE": 503}
DESCRIPTIONS = {
    "BAD_REQUEST": "JSON mal formado",
    "UNAUTHORIZED": "Sin credenciales válidas (token vencido, revocado o ausente)",
    "FORBIDDEN": "Sin el permiso que la operación requiere",
    "NOT_FOUND": "No existe o está fuera de su alcance (se responde igual)",
    "CONFLICT": "Choca con el estado actual del objeto",
    "REQUEST_ENTITY_TOO_LARGE": "La solicitud excede el tamaño permitido",
    "UNSUPPORTED_MEDIA_TYPE": "El cuerpo no es del tipo que la operación acepta",
    "UNPROCESSABLE_ENTITY": "Datos inválidos: error.fields nombra cada campo",
    "TOO_MANY_REQUESTS": "Demasiados intentos: espere los segundos de Retry-After",
    "SERVICE_UNAVAILABLE": "Un servicio no respondió a tiempo; intente más tarde",
    "BAD_GATEWAY": "El almacén de archivos no guardó el archivo; intente de nuevo",
}


def describe_error_responses(spec) -> None:
    """Give the lazily registered per-status error responses their words (and Retry-After)."""
    for name, description in DESCRIPTIONS.items():
        response = spec.components.responses_lazy.get(name)
        if response is not None:
            response["description"] = description
    spec.components.responses_lazy["TOO_MANY_REQUESTS"]["headers"] = {
        "Retry-After": RETRY_AFTER}


def add_error_responses(spec) -> None:
    """Document on every operation the error statuses it can answer, by what it takes:
    a token (401, 403), an object by id (404), a body (400, 413, 415, 422), a query (422),
    a write on an object (409), a service behind it (503); public operations (``security:
    []``) document what they answer themselves (the login's 401 and 429). Statuses a view
    documents itself are kept."""
    for path, operations in spec._paths.items():   # apispec keeps no public iterator
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            parameters = operation.get("parameters", []) + operations.get("parameters", [])
            names = set()
            public = operation.get("security") == []
            if not public:
                names.update(AUTHENTICATED)
            in_path = any(p.get("in") == "path" for p in parameters if isinstance(p, dict))
            query = [p for p in parameters if isinstance(p, dict) and p.get("in") == "query"]
            body = "requestBody" in operation
            by_id = in_path or any(p["name"].endswith("_id") for p in query)
            if by_id or (body and not public):
                names.update(WITH_OBJECTS)
            if body:
                names.update(WITH_BODY)
            if query:
                names.update(WITH_QUERY)
            if method != "get" and (by_id or body) and not public:
                names.update(WRITES)
            names.update(EVERY)
            responses = operation.setdefault("responses", {})
            for name in names:
                responses.setdefault(str(STATUS[name]), spec.components.get_ref("response", name))
            operation["responses"] = dict(sorted(responses.items()))  # "default" sorts last
