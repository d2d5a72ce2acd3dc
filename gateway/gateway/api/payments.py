"""API of payments arriving from outside the files (the portfolio service's
``payments`` and ``payment_webhooks``): an account's payment instructions, the institution's
bank details, payment providers, the triage list of payments no reference matched, and the
providers' own signed webhook, ``POST /api/v1/webhooks/payments/<provider>``.

The webhook is public: its signature is the credential, checked by the portfolio service
over the body exactly as received (so the body is passed on as text, never re-serialised).
"""
from __future__ import annotations

from flask import request
from marshmallow import fields

from portfolio.contracts import (NotificationOut, NotificationPage,
                                       PaymentInstructionsOut, PaymentSettingsOut,
                                       PaymentSettingsWrite, ProviderOut, ProviderWrite,
                                       TriageAssign, TriageDismiss, TriageQuery, WebhookPayment)
from recaudo_common.errors import InvalidInput
from recaudo_common.validation import Schema

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body, query_args

blp = Blueprint("payments", __name__, url_prefix="/api/v1",
                description="Pagos fuera de los archivos: instrucciones de pago (referencia, "
                            "CLABE, convenio), proveedores de pago y pagos por asignar")
blp.before_request(auth.require_api_user)

webhook_blp = Blueprint("payment_webhooks", __name__, url_prefix="/api/v1/webhooks",
                        description="Avisos de pago firmados de proveedores y bancos")

MAX_WEBHOOK_BYTES = 64 * 1024


class WebhookAnswer(Schema):
    id = fields.Integer()
    #: credited | unmatched (waits in the triage list)
    status = fields.String()
    #: a retry of a payment id already received (nothing credited again)
    duplicate = fields.Boolean()


@blp.route("/accounts/<int:account_id>/payment-instructions", methods=["GET"])
@blp.alt_response(200, schema=PaymentInstructionsOut)
def payment_instructions(account_id):
    """Cómo pagar la cuenta: su referencia (concepto SPEI y referencia de ventanilla u
    OXXO, 16 dígitos con dos verificadores), la CLABE, banco, beneficiario y convenio de
    la institución y el monto a pagar. Quien puede consultar la cuenta."""
    with rpc() as proxy:
        return proxy.portfolio.payment_instructions(account_id)


@blp.route("/institutions/<int:institution_id>/payment-settings", methods=["GET"])
@blp.alt_response(200, schema=PaymentSettingsOut)
def get_payment_settings(institution_id):
    """Datos bancarios de cobro de la institución (institutions.manage)."""
    with rpc() as proxy:
        return proxy.portfolio.get_payment_settings(institution_id)


@blp.route("/institutions/<int:institution_id>/payment-settings", methods=["PUT"])
@blp.arguments(PaymentSettingsWrite)
@blp.alt_response(200, schema=PaymentSettingsOut)
def save_payment_settings(_, institution_id):
    """CLABE de cobro (18 dígitos con su verificador), banco, beneficiario y convenio."""
    with rpc() as proxy:
        return proxy.portfolio.save_payment_settings(
            institution_id, body())


@blp.route("/payment-providers", methods=["GET"])
@blp.alt_response(200, schema=ProviderOut(many=True))
def list_providers():
    """Proveedores de pago de las instituciones del usuario (el secreto nunca se muestra)."""
    with rpc() as proxy:
        return proxy.portfolio.list_payment_providers()


@blp.route("/payment-providers", methods=["POST"])
@blp.arguments(ProviderWrite)
@blp.alt_response(201, schema=ProviderOut)
def create_provider(_):
    """Nuevo proveedor: su nombre va en la dirección del webhook; su secreto (32
    caracteres o más) firma cada aviso (institutions.manage)."""
    with rpc() as proxy:
        return proxy.portfolio.save_payment_provider(body()), 201


@blp.route("/payment-providers/<int:provider_id>", methods=["PUT"])
@blp.arguments(ProviderWrite)
@blp.alt_response(200, schema=ProviderOut)
def update_provider(_, provider_id):
    """Cambia el proveedor; sin ``secret`` conserva el suyo."""
    with rpc() as proxy:
        return proxy.portfolio.save_payment_provider(body(),
                                                            provider_id)


@blp.route("/payment-triage", methods=["GET"])
@blp.arguments(TriageQuery, location="query")
@blp.alt_response(200, schema=NotificationPage)
def payment_triage(_):
    """Pagos avisados cuya referencia no nombró ninguna cuenta (``status=unmatched``, por
    omisión) o ya resueltos, del más reciente al más antiguo (portfolio.write)."""
    with rpc() as proxy:
        return proxy.portfolio.payment_triage(query_args(TriageQuery))


@blp.route("/payment-triage/<int:notification_id>/assign", methods=["POST"])
@blp.arguments(TriageAssign)
@blp.alt_response(200, schema=NotificationOut)
def assign_payment(_, notification_id):
    """Abona el pago a una cuenta de su institución, como lo haría un archivo de pagos."""
    with rpc() as proxy:
        return proxy.portfolio.assign_triaged_payment(
            notification_id, body())


@blp.route("/payment-triage/<int:notification_id>/dismiss", methods=["POST"])
@blp.arguments(TriageDismiss)
@blp.alt_response(200, schema=NotificationOut)
def dismiss_payment(_, notification_id):
    """Descarta el pago (devuelto, ajeno) con una nota."""
    with rpc() as proxy:
        return proxy.portfolio.dismiss_triaged_payment(
            notification_id, body())


@webhook_blp.route("/payments/<provider>", methods=["POST"])
@webhook_blp.doc(security=[], parameters=[
    {"in": "header", "name": "X-Recaudo-Timestamp", "required": True,
     "schema": {"type": "string"}, "description": "Segundos Unix; más de 5 minutos: rechazado"},
    {"in": "header", "name": "X-Recaudo-Signature", "required": True,
     "schema": {"type": "string"},
     "description": "v1=<hex de HMAC-SHA256 de \"<timestamp>.<cuerpo>\" con el secreto>"}])
@webhook_blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": WebhookPayment}}})
@webhook_blp.alt_response(200, schema=WebhookAnswer)
@webhook_blp.alt_response(401, response="UNAUTHORIZED")  # bad or old signature, unknown provider
@webhook_blp.alt_response(409, response="CONFLICT")   # the same payment_id, other contents
def payment_webhook(provider):
    """Aviso de pago de un proveedor, firmado: se abona a la cuenta de la referencia una
    sola vez por ``payment_id`` (un reintento contesta lo mismo); una referencia
    desconocida queda en pagos por asignar."""
    raw = request.get_data(cache=True)
    if len(raw) > MAX_WEBHOOK_BYTES:
        raise InvalidInput("Cuerpo demasiado grande", {"_schema": ["Más de 64 KiB"]})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("El cuerpo no es UTF-8", {"_schema": ["No es UTF-8"]}) from None
    with auth.anonymous_rpc() as proxy:
        return proxy.portfolio.receive_payment_webhook(
            provider, text, request.headers.get("X-Recaudo-Timestamp", ""),
            request.headers.get("X-Recaudo-Signature", ""))
