"""API of preventive campaigns (owned by the queues service): a campaign's conditions (the
queue rules' own), schedule, channel, template and hold-out share; the preview of its
target count, pause and resume, a run on demand, and its report.

Bodies are validated here with the queues service's schemas for a quick 422 naming the
field; the service validates again and enforces permissions (``queues.manage`` and
``messaging.send`` to manage, ``reports.view`` or ``queues.manage`` to read) and the
institution scope (another institution's campaign answers 404, like a missing one).
Amounts are answered as decimal text.
"""
from __future__ import annotations

from marshmallow import fields
from recaudo_common.validation import Schema

from queues.contracts import CampaignOut, CampaignPreviewOf, CampaignWrite

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body

blp = Blueprint("campaigns", __name__, url_prefix="/api/v1",
                description="Campañas preventivas de vencimientos: condiciones, horario, canal, "
                            "plantilla y grupo de control; vista previa, pausa, ejecución y "
                            "resultados")
blp.before_request(auth.require_api_user)



class CampaignListQuery(Schema):
    institution_id = fields.Integer(load_default=None)


class CampaignListed(CampaignOut):
    last_run_day = fields.Date(allow_none=True)


class Preview(Schema):
    targeted = fields.Integer(metadata={"description": "cuentas que las condiciones toman hoy"})
    held_out = fields.Integer(metadata={"description": "de ellas, en el grupo de control"})
    to_send = fields.Integer()
    balance = fields.String(metadata={"description": "saldo de las cuentas tomadas"})


class Run(Schema):
    run_id = fields.Integer()
    day = fields.Date(metadata={"description": "día de la institución"})
    targeted = fields.Integer()
    held_out = fields.Integer()


class Group(Schema):
    accounts = fields.Integer()
    paid = fields.Integer(metadata={"description": "pagaron entre el envío y el vencimiento"})
    paid_rate = fields.String(allow_none=True, metadata={"description": "porcentaje"})
    paid_amount = fields.String()
    balance = fields.String()


class Cause(Schema):
    cause = fields.String(metadata={"description": "do_not_contact | outside_hours | no_address"})
    count = fields.Integer()


class RunSummary(Schema):
    id = fields.Integer()
    day = fields.Date()
    kind = fields.String(metadata={"description": "scheduled | manual"})
    started_at = fields.String()
    targeted = fields.Integer()
    held_out = fields.Integer()
    sent = fields.Integer()
    refused = fields.Integer()
    pending = fields.Integer()


class Report(Schema):
    campaign = fields.Nested(CampaignOut)
    campaign_id = fields.Integer()
    targeted = fields.Integer()
    held_out = fields.Integer()
    pending = fields.Integer()
    sent = fields.Integer()
    refused = fields.Integer()
    refused_by_cause = fields.List(fields.Nested(Cause))
    failed = fields.Integer(metadata={"description": "envíos que mensajería no aceptó"})
    delivered = fields.Integer()
    delivery_failed = fields.Integer()
    contacted = fields.Nested(Group, metadata={"description": "todos los que no son de control"})
    holdout = fields.Nested(Group)
    lift_points = fields.String(allow_none=True,
                                metadata={"description": "puntos porcentuales de diferencia"})
    runs = fields.List(fields.Nested(RunSummary))


@blp.route("/campaigns", methods=["GET"])
@blp.arguments(CampaignListQuery, location="query")
@blp.alt_response(200, schema=CampaignListed(many=True))
def list_campaigns(query):
    """Campañas de las instituciones del usuario (o de una)."""
    with rpc() as proxy:
        return proxy.queues.list_campaigns(query.get("institution_id"))


@blp.route("/campaigns/preview", methods=["POST"])
@blp.arguments(CampaignPreviewOf)
@blp.alt_response(200, schema=Preview)
def preview_campaign(_):
    """Cuántas cuentas tomarían hoy las condiciones, antes de guardar (con ``campaign_id``,
    el reparto exacto de esa campaña al grupo de control; sin él, una estimación)."""
    with rpc() as proxy:
        return proxy.queues.preview_campaign(body())


@blp.route("/campaigns", methods=["POST"])
@blp.arguments(CampaignWrite)
@blp.alt_response(201, schema=CampaignOut)
def create_campaign(_):
    """Crea una campaña activa: condiciones como las de una fila
    (``{"all"|"any": [{field, op, value}]}``, p. ej. ``stage = current`` y
    ``days_to_next_due`` entre 0 y 3), canal (``email`` o ``letter``), plantilla, hora del
    envío diario (zona de la institución) y porcentaje de control (0-50)."""
    with rpc() as proxy:
        return proxy.queues.save_campaign(body()), 201


@blp.route("/campaigns/<int:campaign_id>", methods=["GET"])
@blp.alt_response(200, schema=CampaignOut)
def get_campaign(campaign_id):
    with rpc() as proxy:
        return proxy.queues.get_campaign(campaign_id)


@blp.route("/campaigns/<int:campaign_id>", methods=["PUT"])
@blp.arguments(CampaignWrite)
@blp.alt_response(200, schema=CampaignOut)
def update_campaign(_, campaign_id):
    """Cambia la campaña; lo ya enviado queda como fue."""
    with rpc() as proxy:
        return proxy.queues.save_campaign(body(), campaign_id)


@blp.route("/campaigns/<int:campaign_id>/pause", methods=["POST"])
@blp.alt_response(200, schema=CampaignOut)
def pause_campaign(campaign_id):
    """En pausa no corre ni envía lo pendiente."""
    with rpc() as proxy:
        return proxy.queues.set_campaign_state(campaign_id, "paused")


@blp.route("/campaigns/<int:campaign_id>/resume", methods=["POST"])
@blp.alt_response(200, schema=CampaignOut)
def resume_campaign(campaign_id):
    with rpc() as proxy:
        return proxy.queues.set_campaign_state(campaign_id, "active")


@blp.route("/campaigns/<int:campaign_id>/run", methods=["POST"])
@blp.alt_response(200, schema=Run)
def run_campaign(campaign_id):
    """Toma ahora las cuentas de la campaña (las ya tomadas para el mismo vencimiento no se
    repiten); los envíos siguen en segundos. Una campaña en pausa responde 409."""
    with rpc() as proxy:
        return proxy.queues.run_campaign(campaign_id)


@blp.route("/campaigns/<int:campaign_id>/report", methods=["GET"])
@blp.alt_response(200, schema=Report)
def campaign_report(campaign_id):
    """Tomadas, enviadas, rechazadas por la política (y por qué), entregadas, y cuántas
    pagaron antes del vencimiento: el grupo contactado contra el de control."""
    with rpc() as proxy:
        return proxy.queues.campaign_report(campaign_id)
