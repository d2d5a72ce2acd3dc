"""API of each institution's limits on promises, plans and settlements, and of the
approval queue of what falls outside them (the activities service's ``limits.py``).

Bodies are validated here with the service's own schemas for a quick 422 naming the
field; the service validates again, checks the permission and the institution scope (an
approval of another institution answers 404, like a missing one) and dumps its answers.
"""
from __future__ import annotations


from activities.contracts import (ApprovalDecision, ApprovalOut, ApprovalQuery,
                                       LimitsOut, LimitsWrite)
from recaudo_common.validation import page_schema

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body, query_args

blp = Blueprint("limits", __name__, url_prefix="/api/v1",
                description="Límites de promesas, planes y convenios por institución, y la "
                            "fila de aprobación de lo que queda fuera de ellos")
blp.before_request(auth.require_api_user)

ApprovalPage = page_schema(ApprovalOut, "ApprovalPage")


@blp.route("/institutions/<int:institution_id>/plan-limits", methods=["GET"])
@blp.alt_response(200, schema=LimitsOut)
def get_plan_limits(institution_id):
    """Parcialidades máximas, primer pago mínimo, duración máxima del plan, rangos de
    descuento por etapa y días de atraso (con quién aprueba arriba de cada umbral) y
    vigencia de las ofertas de convenio."""
    with rpc() as proxy:
        return proxy.activities.get_plan_limits(institution_id)


@blp.route("/institutions/<int:institution_id>/plan-limits", methods=["PUT"])
@blp.arguments(LimitsWrite)
@blp.alt_response(200, schema=LimitsOut)
def save_plan_limits(_, institution_id):
    with rpc() as proxy:
        return proxy.activities.save_plan_limits(institution_id, body())


@blp.route("/approvals", methods=["GET"])
@blp.arguments(ApprovalQuery, location="query")
@blp.alt_response(200, schema=ApprovalPage)
def list_approvals(_):
    """Promesas, planes y convenios fuera de los límites, los más antiguos primero."""
    with rpc() as proxy:
        return proxy.activities.list_approvals(query_args(ApprovalQuery))


@blp.route("/approvals/<int:approval_id>/decision", methods=["POST"])
@blp.arguments(ApprovalDecision)
@blp.alt_response(200, schema=ApprovalOut)
def decide_approval(_, approval_id):
    """Aprueba (la promesa se registra entonces) o rechaza (diciendo por qué), una vez:
    409 si ya se decidió."""
    with rpc() as proxy:
        return proxy.activities.decide_approval(approval_id, body())


@blp.route("/accounts/<int:account_id>/approvals", methods=["GET"])
@blp.alt_response(200, schema=ApprovalOut(many=True))
def account_approvals(account_id):
    """Las solicitudes de aprobación de la cuenta y su estado."""
    with rpc() as proxy:
        return proxy.activities.account_approvals(account_id)
