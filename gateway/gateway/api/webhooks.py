"""API of partners' webhooks (the messaging service's ``partner_hooks``): an institution's
integration user subscribes an HTTPS endpoint to events of its accounts, reads the
delivery log and sends a delivery again (``webhooks.manage``)."""
from __future__ import annotations


from messaging.contracts import (DeliveryOut, DeliveryPage, DeliveryQuery,
                                       SubscriptionChange, SubscriptionCreate,
                                       SubscriptionCreated, SubscriptionOut)

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body, query_args

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1",
                description="Webhooks para socios: suscripciones a eventos de sus cuentas, "
                            "bitácora de entregas y reenvío")
blp.before_request(auth.require_api_user)


@blp.route("/webhook-subscriptions", methods=["GET"])
@blp.alt_response(200, schema=SubscriptionOut(many=True))
def list_subscriptions():
    """Suscripciones de las instituciones del usuario (el secreto no se vuelve a mostrar)."""
    with rpc() as proxy:
        return proxy.messaging.list_webhook_subscriptions()


@blp.route("/webhook-subscriptions", methods=["POST"])
@blp.arguments(SubscriptionCreate)
@blp.alt_response(201, schema=SubscriptionCreated)
def create_subscription(_):
    """Suscribe una dirección https:// pública a eventos (payment_received, promise_made,
    promise_kept, promise_broken, dispute_opened, dispute_resolved, stage_changed,
    activity_logged). Cada entrega va firmada: ``X-Recaudo-Signature: v1=<HMAC-SHA256 de
    "<X-Recaudo-Timestamp>.<X-Recaudo-Event-Id>.<cuerpo>">``; el secreto sólo se muestra
    en esta respuesta."""
    with rpc() as proxy:
        return proxy.messaging.create_webhook_subscription(
            body()), 201


@blp.route("/webhook-subscriptions/<int:subscription_id>", methods=["PATCH"])
@blp.arguments(SubscriptionChange)
@blp.alt_response(200, schema=SubscriptionOut)
def change_subscription(_, subscription_id):
    """Cambia la dirección, los eventos, el correo de contacto o ``active``; activar una
    suscripción en pausa la reanuda (se envía lo pendiente)."""
    with rpc() as proxy:
        return proxy.messaging.update_webhook_subscription(
            subscription_id, body())


@blp.route("/webhook-subscriptions/<int:subscription_id>", methods=["DELETE"])
@blp.alt_response(204, description="Suscripción eliminada")
def delete_subscription(subscription_id):
    with rpc() as proxy:
        proxy.messaging.delete_webhook_subscription(subscription_id)
    return "", 204


@blp.route("/webhook-subscriptions/<int:subscription_id>/deliveries", methods=["GET"])
@blp.arguments(DeliveryQuery, location="query")
@blp.alt_response(200, schema=DeliveryPage)
def deliveries(_, subscription_id):
    """Bitácora de entregas, de la más reciente a la más antigua: estado, intentos y cada
    respuesta (código o error) con su latencia."""
    with rpc() as proxy:
        return proxy.messaging.webhook_deliveries(subscription_id,
                                                         query_args(DeliveryQuery))


@blp.route("/webhook-deliveries/<int:delivery_id>/resend", methods=["POST"])
@blp.alt_response(200, schema=DeliveryOut)
def resend(delivery_id):
    """Enviar de nuevo: la entrega vuelve a quedar pendiente, ya (24 h más de reintentos)."""
    with rpc() as proxy:
        return proxy.messaging.resend_webhook_delivery(delivery_id)
