"""Flask application factory of the gateway."""
from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, request

from recaudo_common.config import Settings, settings as load_settings
from recaudo_common.logs import request_id_var, setup_logging
from recaudo_common.rpc_publishing import tune_rpc_publishing

from . import auth, boundary, errors, i18n, security, timefmt, uploads
from .account import bp as account_bp
from .activities import bp as activities_bp
from .admin import bp as admin_bp
from .documents import bp as documents_bp
from .dashboards import bp as dashboards_bp
from .api import api
from .health import bp as health_bp
from .messaging import bp as messaging_bp
from .portfolio import bp as portfolio_bp
from .campaigns import bp as campaigns_bp
from .queues import bp as queues_bp
from .reports import bp as reports_bp
from .rpc import RpcPool
from .share import bp as share_bp
from .portal import bp as portal_bp
from .approvals import bp as approvals_bp
from .ui import bp as ui_bp

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def create_app(cfg: Settings | None = None, testing: bool = False) -> Flask:
    cfg = cfg or load_settings()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=cfg.gateway_secret_key,
        TESTING=testing,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,   # bytes go to S3 directly, never through here
        JSON_SORT_KEYS=False,
        API_TITLE="Recaudo API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/static/vendor/swagger-ui/",
    )
    app.extensions["recaudo.settings"] = cfg
    tune_rpc_publishing()
    app.extensions["recaudo.rpc"] = RpcPool(cfg.nameko, cfg.rpc_pool_size, cfg.rpc_timeout)
    app.extensions["recaudo.rpc_health"] = RpcPool(cfg.nameko, 2, cfg.health_timeout)
    if not logging.getLogger().handlers:
        setup_logging("gateway", cfg.log_format, cfg.log_level)

    @app.before_request
    def _bind_request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request_id_var.set(g.request_id)

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        return response

    # before the CSRF check reads a form: the upload endpoints take files up to 1 GiB
    app.before_request(uploads.allow_large_upload)
    security.init_app(app)   # first registered: its after_request runs last, sees every cookie
    boundary.init_app(app)   # every route's input, before anyone is asked who is calling
    auth.init_app(app)
    i18n.init_app(app)
    timefmt.init_app(app)   # the one way every template prints a time
    api.init_app(app)
    errors.register(app)
    app.register_blueprint(health_bp)
    app.register_blueprint(ui_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(portfolio_bp)
    app.register_blueprint(queues_bp)
    app.register_blueprint(campaigns_bp)
    app.register_blueprint(activities_bp)
    app.register_blueprint(messaging_bp)
    app.register_blueprint(documents_bp)
    app.register_blueprint(share_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(approvals_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(dashboards_bp)
    return app

