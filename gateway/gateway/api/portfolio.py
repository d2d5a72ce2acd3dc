"""API of the portfolio: institutions (more in the portfolio issue)."""
from __future__ import annotations

from flask_smorest import Blueprint

from portfolio.schemas import InstitutionOut

from .. import auth
from ..rpc import rpc

blp = Blueprint("portfolio", __name__, url_prefix="/api/v1",
                description="Cartera: instituciones acreedoras")
blp.before_request(auth.require_api_user)


@blp.route("/institutions", methods=["GET"])
@blp.alt_response(200, schema=InstitutionOut(many=True))
def list_institutions():
    """Instituciones a su alcance (un cliente acreedor ve sólo la suya)."""
    with rpc() as proxy:
        return proxy.portfolio.list_institutions()


@blp.route("/institutions/<int:institution_id>", methods=["GET"])
@blp.alt_response(200, schema=InstitutionOut)
def get_institution(institution_id):
    with rpc() as proxy:
        return proxy.portfolio.get_institution(institution_id)
