"""The web UI: server-rendered pages, one module per area (as ``api/`` has one per area of
the REST API). Every page asks the services through the same RPC pool as the API; what
the modules share (query arguments, notices, error pages, labels) is ``_common``."""
from __future__ import annotations

from flask import Flask

from .account import bp as account_bp
from .activities import bp as activities_bp
from .approvals import bp as approvals_bp
from .admin import bp as admin_bp
from .campaigns import bp as campaigns_bp
from .compliance import bp as compliance_bp
from .dashboards import bp as dashboards_bp
from .documents import bp as documents_bp
from .home import bp as home_bp
from .institution_settings import bp as settings_bp
from .messaging import bp as messaging_bp
from .partner_webhooks import bp as webhooks_bp
from .payment_triage import bp as payment_triage_bp
from .portal import bp as portal_bp
from .portfolio import bp as portfolio_bp
from .queues import bp as queues_bp
from .reports import bp as reports_bp
from .share import bp as share_bp

#: in the order they were always registered (a route's first owner wins)
BLUEPRINTS = (home_bp, account_bp, admin_bp, portfolio_bp, queues_bp, campaigns_bp,
              activities_bp, messaging_bp, payment_triage_bp, documents_bp, share_bp, portal_bp,
              approvals_bp, reports_bp, dashboards_bp, compliance_bp, settings_bp, webhooks_bp)


def init_app(app: Flask) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
