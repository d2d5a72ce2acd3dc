"""Errors of the web UI's screens as pages, the same for every UI blueprint.

Each blueprint says how it draws a page (``render(status, code, message)``: a full error
page, or a fragment for htmx); which error becomes which status, code and Spanish message
is decided here once. The API keeps its JSON body (``errors.py``).
"""
from __future__ import annotations

from typing import Callable

from flask import Blueprint
from flask_babel import gettext as _
from nameko.exceptions import MethodNotFound, RpcTimeout, UnknownService
from werkzeug.exceptions import HTTPException

from recaudo_common.errors import DomainError

from ..errors import BROKER_OUTAGES, HTTP_STATUS

Render = Callable[[int, str, str], object]

HTTP_CODES = {403: "permission_denied", 404: "not_found", 413: "payload_too_large"}


def _messages() -> dict:
    """Status -> what the person is told instead of the technical message."""
    return {403: _("No tiene permiso para ver esta página."),
            404: _("No se encontró lo que busca: no existe o está fuera de su alcance."),
            413: _("El archivo es demasiado grande.")}


def register(bp: Blueprint, render: Render) -> None:
    """Answer ``bp``'s errors with pages drawn by ``render``."""

    def http_error(exc: HTTPException):
        status = exc.code or 500
        return render(status, HTTP_CODES.get(status, "error"),
                      _messages().get(status, exc.description or exc.name))

    def domain_error(exc: DomainError):
        status = HTTP_STATUS.get(type(exc), 400)
        return render(status, exc.code, _messages().get(status, exc.message))

    def unavailable(exc):
        return render(503, "service_unavailable", _("Servicio no disponible, intente más tarde."))

    def not_wired(exc):
        return render(503, "not_available", _("Esta función aún no está disponible."))

    for error, handler in ((HTTPException, http_error), (DomainError, domain_error),
                           (RpcTimeout, unavailable), (UnknownService, unavailable),
                           (MethodNotFound, not_wired),
                           *((error, unavailable) for error in BROKER_OUTAGES)):
        bp.register_error_handler(error, handler)
