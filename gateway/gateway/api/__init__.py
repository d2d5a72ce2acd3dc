"""The REST API under ``/api/v1`` (OpenAPI 3 at /api/v1/openapi.json, docs at /api/v1/docs).

Each area adds a ``flask_smorest.Blueprint`` here; every error it answers uses the
gateway's one JSON error body. Services load their input and dump their output
through their own schemas, so views validate request bodies (``@blp.arguments``)
and only *document* responses (``@blp.alt_response``): nothing is dumped twice.
How a view reads its body and query string and how its answer is written to JSON
is ``_views`` (one rule each).
"""
from __future__ import annotations

from flask_smorest import Api as _Api

from .. import errors
from . import openapi
from ._views import AnswerJSON
from .activities import blp as activities_blp, calendar_blp
from .admin import blp as admin_blp
from .auth import blp as auth_blp
from .campaigns import blp as campaigns_blp
from .compliance import blp as compliance_blp
from .messaging import blp as messaging_blp
from .payments import blp as payments_blp, webhook_blp as payment_webhooks_blp
from .webhooks import blp as webhooks_blp
from .documents import blp as documents_blp
from .limits import blp as limits_blp
from .portal import blp as portal_blp, staff_blp as portal_links_blp
from .portfolio import blp as portfolio_blp
from .queues import blp as queues_blp
from .reports import blp as reports_blp
from .schedules import blp as schedules_blp
from .system import blp as system_blp


class Api(_Api):
    #: documented as answered: {"error": {"code", "message", "fields"}}
    ERROR_SCHEMA = openapi.ErrorResponse

    def handle_http_exception(self, error):
        return errors.handle_http_exception(error)

    def _init_spec(self, **kwargs):
        super()._init_spec(**kwargs)
        self.ma_plugin.converter.add_attribute_function(openapi.decimal_as_string)

    def _register_responses(self):
        super()._register_responses()
        openapi.describe_error_responses(self.spec)


class _LazyApi:
    """One Api per app (tests build several apps in one process)."""

    def init_app(self, app):
        app.json = AnswerJSON(app)
        instance = Api(app, spec_kwargs={"info": {
            "description": "API de Recaudo para la app móvil y los sistemas de socios. "
                           "Errores: {\"error\": {\"code\", \"message\", \"fields\"}}."}})
        for blueprint in (system_blp, auth_blp, admin_blp, portfolio_blp, queues_blp,
                          activities_blp, calendar_blp, documents_blp, reports_blp, messaging_blp,
                          schedules_blp, campaigns_blp, compliance_blp, payments_blp,
                          payment_webhooks_blp, webhooks_blp, limits_blp, portal_blp,
                          portal_links_blp):
            instance.register_blueprint(blueprint)
        openapi.add_error_responses(instance.spec)
        instance.spec.components.security_scheme(
            "bearer", {"type": "http", "scheme": "bearer",
                       "description": "Token de /api/v1/auth/token o llave de API (rk_…)"})
        instance.spec.options["security"] = [{"bearer": []}]
        app.extensions["recaudo.api"] = instance


api = _LazyApi()
