"""The one table that maps domain errors to HTTP, and the JSON error body.

Every error the gateway answers has the shape
``{"error": {"code": ..., "message": ..., "fields": {...}}}``.
"""
from __future__ import annotations

import logging
import socket

import amqp.exceptions
import kombu.exceptions
from flask import jsonify, request
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from werkzeug.exceptions import HTTPException

from recaudo_common import errors as domain
from recaudo_common.resilience import unavailable

from .validation import N_, localize, localize_fields

log = logging.getLogger(__name__)

HTTP_STATUS = {
    domain.InvalidInput: 422,
    domain.NotAuthenticated: 401,
    domain.PermissionDenied: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Throttled: 429,
    domain.Gone: 410,
    domain.Unavailable: 503,
}

#: what the gateway's own broker connection raises while RabbitMQ is away
BROKER_OUTAGES = (kombu.exceptions.OperationalError, amqp.exceptions.ConnectionError,
                  ConnectionError, socket.timeout)


def error_body(status: int, code: str, message: str, fields: dict | None = None):
    """The JSON error, its message and each field's problems in the request's language."""
    response = jsonify({"error": {"code": code, "message": localize(message),
                                  "fields": localize_fields(fields or {})}})
    response.status_code = status
    return response


#: HTTP status -> (machine code, message) for errors raised by Flask/Werkzeug/webargs
HTTP_ERRORS = {
    400: ("bad_request", N_("Solicitud mal formada (revise el JSON)")),
    401: ("not_authenticated", N_("Se requiere autenticación")),
    403: ("permission_denied", N_("No tiene permiso para esta operación")),
    404: ("not_found", N_("No encontrado")),
    405: ("method_not_allowed", N_("Método no permitido")),
    409: ("conflict", N_("Conflicto con el estado actual")),
    413: ("payload_too_large", N_("La solicitud excede el tamaño permitido")),
    415: ("unsupported_media_type", N_("Tipo de contenido no admitido")),
    422: ("invalid_input", N_("Datos inválidos")),
    429: ("throttled", N_("Demasiadas solicitudes; intente más tarde")),
}


def handle_http_exception(exc: HTTPException):
    """Werkzeug and webargs errors: webargs puts field messages in ``exc.data``."""
    fields = {}
    messages = getattr(exc, "data", {}).get("messages") if hasattr(exc, "data") else None
    if isinstance(messages, dict):
        for location_fields in messages.values():
            if isinstance(location_fields, dict):
                fields.update(location_fields)
    status = exc.code or 500
    code, message = HTTP_ERRORS.get(status, ("error", exc.name))
    return error_body(status, code, message, fields)


def handle_domain_error(exc: domain.DomainError):
    response = error_body(HTTP_STATUS.get(type(exc), 400), exc.code, exc.message, exc.fields)
    if isinstance(exc, domain.Throttled) and exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def outage(exc: Exception) -> domain.Unavailable:
    """What is down, as the error the client is told: the broker, or the service that did
    not answer in time."""
    if isinstance(exc, (RpcTimeout, UnknownService)):
        return domain.Unavailable.of("service")
    return domain.Unavailable.of(unavailable(exc) or "broker")


def handle_unavailable(exc: Exception):
    log.warning("unavailable for %s: %r", request.path, exc)
    return handle_domain_error(outage(exc))


def handle_remote_error(exc: RemoteError):
    log.error("remote error on %s: %s", request.path, exc)
    return error_body(500, "internal_error", N_("Error interno"))


def register(app) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(domain.DomainError, handle_domain_error)
    app.register_error_handler(RpcTimeout, handle_unavailable)
    app.register_error_handler(UnknownService, handle_unavailable)
    for error in BROKER_OUTAGES:
        app.register_error_handler(error, handle_unavailable)
    app.register_error_handler(RemoteError, handle_remote_error)
