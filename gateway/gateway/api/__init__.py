"""The REST API under ``/api/v1`` (OpenAPI 3 at /api/v1/openapi.json, docs at /api/v1/docs).

Each area adds a ``flask_smorest.Blueprint`` here; every error it answers uses the
gateway's one JSON error body.
"""
from __future__ import annotations

from flask_smorest import Api as _Api

from .. import errors
from .system import blp as system_blp


class Api(_Api):
    def handle_http_exception(self, error):
        return errors.handle_http_exception(error)


class _LazyApi:
    """One Api per app (tests build several apps in one process)."""

    def init_app(self, app):
        instance = Api(app, spec_kwargs={"info": {
            "description": "API de Recaudo para la app móvil y los sistemas de socios. "
                           "Errores: {\"error\": {\"code\", \"message\", \"fields\"}}."}})
        instance.register_blueprint(system_blp)
        app.extensions["recaudo.api"] = instance


api = _LazyApi()
