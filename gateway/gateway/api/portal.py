"""The debtor portal's API for a mobile app, ``/api/v1/portal``: the same actions as the
``/mi-cuenta`` pages (``gateway/portal.py``), with the debtor session's id as a bearer
token (``ps_…``) from ``POST /portal/session``. A staff token means nothing here, and a
debtor's token nothing elsewhere; the services check the debtor principal against their
own rows (another debtor's account answers 404, like a missing one).
"""
from __future__ import annotations

from flask import g, request
from marshmallow import fields, validate

from activities.contracts import ApprovalOut
from activities.contracts import (PortalCallback, PortalDispute, PortalPreferences,
                                       PortalPromise, PortalSettlement)
from activities.contracts import DisputeOut, PreferencesOut, PromiseOut
from portfolio.contracts import PortalAccount as _PortalAccount
from recaudo_common.validation import Schema

from .. import auth as _auth, debtor_portal as portal
from ..errors import error_body
from ..rpc import rpc as staff_rpc
from ._views import Blueprint, body

blp = Blueprint("portal_api", __name__, url_prefix="/api/v1/portal",
                description="Portal del deudor para la app móvil: liga personal y segundo "
                            "factor, su saldo, promesas y planes dentro de los límites, "
                            "oferta de liquidación, aclaraciones con documento, preferencias "
                            "de contacto y llamada de regreso")


class SessionOpen(Schema):
    institution_id = fields.Integer(required=True)
    token = fields.String(required=True, metadata={"description": "de la liga personal (pl_…)"})
    answer = fields.String(required=True, metadata={
        "description": "segundo factor: fecha de nacimiento (AAAA-MM-DD) o últimos 4 de la "
                       "cuenta o del RFC, según la institución"})
    language = fields.String(load_default="es")


class SessionOpened(Schema):
    session_token = fields.String(metadata={"description": "ps_…: úselo como Bearer; vence "
                                                           "tras 15 minutos sin uso"})
    debtor_id = fields.Integer()
    institution_id = fields.Integer()
    idle_timeout = fields.Integer()


class PortalPromiseOut(PromiseOut):
    """(Named apart: OpenAPI names schemas by class.)"""


class Offer(Schema):
    account_id = fields.Integer()
    discount_pct = fields.String()
    balance = fields.String()
    amount = fields.String()
    pay_by = fields.Date()
    max_pct = fields.String(metadata={"description": "el mayor descuento que puede pedirse "
                                                     "(arriba de discount_pct, con aprobación)"})


class PortalAccountView(_PortalAccount):
    promises = fields.List(fields.Nested(PortalPromiseOut))
    disputes = fields.List(fields.Nested(DisputeOut))
    approvals = fields.List(fields.Nested(ApprovalOut))
    offer = fields.Nested(Offer, allow_none=True)


class SharedDocument(Schema):
    id = fields.Integer()
    name = fields.String()
    category = fields.String()
    versions = fields.List(fields.Dict())


class Download(Schema):
    url = fields.String(metadata={"description": "GET prefirmado de unos minutos"})
    expires_at = fields.AwareDateTime()
    name = fields.String()
    content_type = fields.String()


class PortalMe(Schema):
    debtor_id = fields.Integer()
    name = fields.String()
    institution_id = fields.Integer()
    institution = fields.String()
    currency = fields.String()
    time_zone = fields.String()
    accounts = fields.List(fields.Nested(PortalAccountView))
    preferences = fields.Nested(PreferencesOut, allow_none=True)
    documents = fields.List(fields.Nested(SharedDocument))


class PromiseMade(Schema):
    promise = fields.Nested(PortalPromiseOut, allow_none=True)
    approval = fields.Nested(ApprovalOut, allow_none=True,
                             metadata={"description": "fuera de los límites: en revisión"})
    activity_id = fields.Integer()


class SettlementAccepted(PromiseMade):
    offer = fields.Nested(Offer)


class CallbackAsked(Schema):
    agenda_item_id = fields.Integer()
    due_at = fields.AwareDateTime()
    activity_id = fields.Integer()


class UploadAsk(Schema):
    account_id = fields.Integer(required=True)
    filename = fields.String(required=True)
    size = fields.Integer(required=True)


class UploadTicketOut(Schema):
    upload_id = fields.String()
    url = fields.String()
    fields_ = fields.Dict(data_key="fields")
    max_bytes = fields.Integer()
    expires_at = fields.AwareDateTime()


class DocumentOut(Schema):
    id = fields.Integer()
    name = fields.String()
    version_id = fields.Integer(attribute="latest.id", metadata={
        "description": "lo que una aclaración lleva como ``document_version_id``"})


@blp.before_request
def _debtor():
    if request.endpoint == "portal_api.open_session":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip().startswith("ps_") \
            or portal.resolve(token.strip()) is None:
        return error_body(401, "not_authenticated", "Se requiere la sesión del portal")
    return None



@blp.route("/session", methods=["POST"])
@blp.arguments(SessionOpen)
@blp.alt_response(201, schema=SessionOpened)
@blp.doc(security=[])
def open_session(data):
    """Abre la liga personal con su segundo factor. Toda negativa (liga desconocida, vencida,
    usada, bloqueada, de otra institución, respuesta equivocada) es el mismo 401; 5
    respuestas equivocadas bloquean la liga 30 minutos."""
    opened = portal.open_link(data["institution_id"], data["token"], data["answer"],
                              data["language"] if data["language"] in ("es", "en") else "es")
    return {k: opened[k] for k in ("session_token", "debtor_id", "institution_id",
                                   "idle_timeout")}, 201


@blp.route("/session", methods=["DELETE"])
@blp.alt_response(204)
def close_session():
    portal.close(g.portal_token)
    return "", 204


@blp.route("/me", methods=["GET"])
@blp.alt_response(200, schema=PortalMe)
def me():
    """Sus cuentas con la institución: saldo, vencido, pagos programados, movimientos,
    promesas y su estado, aclaraciones abiertas, oferta de liquidación y preferencias."""
    return portal.overview()


@blp.route("/documents/<int:version_id>/download", methods=["GET"])
@blp.alt_response(200, schema=Download)
def download(version_id):
    """Un documento que la institución compartió con usted, o el que envió con una
    aclaración (404 si no)."""
    with portal.debtor_rpc() as proxy:
        return proxy.documents.portal_download_url(version_id)


@blp.route("/promises", methods=["POST"])
@blp.arguments(PortalPromise)
@blp.alt_response(201, schema=PromiseMade)
def make_promise(_):
    """Una fecha y monto, o un plan: registrada al momento dentro de los límites de la
    institución; fuera de ellos queda en revisión de un supervisor."""
    with portal.debtor_rpc() as proxy:
        return proxy.activities.portal_promise(body()), 201


@blp.route("/settlements", methods=["POST"])
@blp.arguments(PortalSettlement)
@blp.alt_response(201, schema=SettlementAccepted)
def accept_settlement(_):
    """Acepta la oferta de liquidación vigente de la cuenta (409 si no la hay), o pide un
    descuento mayor (``discount_pct``, hasta ``max_pct``): queda pendiente de aprobación
    (``approval``) y sólo vale cuando se aprueba; arriba de ``max_pct``, 422."""
    with portal.debtor_rpc() as proxy:
        return proxy.activities.portal_accept_offer(body()), 201


@blp.route("/uploads", methods=["POST"])
@blp.arguments(UploadAsk)
@blp.alt_response(201, schema=UploadTicketOut)
def request_upload(_):
    """Un POST prefirmado para subir un documento a su expediente (luego ``complete``)."""
    with portal.debtor_rpc() as proxy:
        return proxy.documents.portal_request_upload(body()), 201


@blp.route("/uploads/<upload_id>/complete", methods=["POST"])
@blp.alt_response(201, schema=DocumentOut)
def complete_upload(upload_id):
    """Revisa lo subido (un ejecutable o un archivo disfrazado se rechazan: 422 ``file``)."""
    with portal.debtor_rpc() as proxy:
        return proxy.documents.portal_complete_upload(upload_id), 201


@blp.route("/disputes", methods=["POST"])
@blp.arguments(PortalDispute)
@blp.alt_response(201, schema=DisputeOut)
def open_dispute(_):
    """Abre una aclaración (con el documento ya subido, si lo hay)."""
    with portal.debtor_rpc() as proxy:
        return proxy.activities.portal_dispute(body()), 201


@blp.route("/preferences", methods=["PUT"])
@blp.arguments(PortalPreferences)
@blp.alt_response(200, schema=PreferencesOut)
def save_preferences(_):
    """Canales permitidos o rechazados, horario, idioma, o no más contacto."""
    with portal.debtor_rpc() as proxy:
        return proxy.activities.portal_preferences(body())


@blp.route("/callbacks", methods=["POST"])
@blp.arguments(PortalCallback)
@blp.alt_response(201, schema=CallbackAsked)
def ask_callback(_):
    """Una llamada en la agenda de su gestor (dentro de los próximos 30 días)."""
    with portal.debtor_rpc() as proxy:
        return proxy.activities.portal_callback(body()), 201


# --- the staff's side: links and each institution's setting ----------------------------------

staff_blp = Blueprint("portal_links", __name__, url_prefix="/api/v1",
                      description="Ligas personales del portal del deudor y el segundo "
                                  "factor de cada institución")
staff_blp.before_request(_auth.require_api_user)


class LinkAsk(Schema):
    """By email (``channel`` email): with ``template_id`` and ``account_id`` the link is
    emailed to ``sent_to`` from that template (its ``{{ portal_link }}``); without them it
    is only answered. By SMS (``channel`` sms): texted to ``phone``, one of the debtor's
    numbers, in a short text of its own. Either is judged by the contact policy (refused:
    409 with the rule and reason) and logged in the account's history."""

    channel = fields.String(load_default="email", validate=validate.OneOf(("email", "sms")))
    sent_to = fields.Email(load_default=None, allow_none=True,
                           metadata={"description": "a quién se envía (queda en la bitácora)"})
    phone = fields.String(load_default=None, allow_none=True,
                          validate=validate.Length(min=1, max=40),
                          metadata={"description": "con ``channel`` sms: a qué número"})
    template_id = fields.Integer(load_default=None, allow_none=True)
    account_id = fields.Integer(load_default=None, allow_none=True)
    language = fields.String(load_default="es", validate=validate.OneOf(("es", "en")))


class LinkMade(Schema):
    link_id = fields.Integer()
    channel = fields.String(metadata={"description": "email | sms"})
    message_id = fields.Integer(allow_none=True, metadata={"description": "el correo en cola"})
    sms_id = fields.String(allow_none=True, metadata={"description": "el SMS en cola (uuid)"})
    url = fields.String(metadata={"description": "se muestra una sola vez; un solo uso"})
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    expires_at = fields.AwareDateTime()
    second_factor = fields.String()


class PortalSettingsIn(Schema):
    second_factor = fields.String(required=True, metadata={
        "enum": ["birth_date", "account_last4", "rfc_last4"]})
    link_ttl_hours = fields.Integer(load_default=72)


class PortalSettingsOut(PortalSettingsIn):
    institution_id = fields.Integer()


@staff_blp.route("/debtors/<int:debtor_id>/portal-links", methods=["POST"])
@staff_blp.arguments(LinkAsk)
@staff_blp.alt_response(201, schema=LinkMade)
def create_link(data, debtor_id):
    """Una liga personal al portal para un deudor que usted gestiona: de un solo uso, vence
    según la institución; pide el segundo factor al abrirse."""
    with staff_rpc() as proxy:
        return portal.send_link(proxy, debtor_id, data), 201


@staff_blp.route("/institutions/<int:institution_id>/portal-settings", methods=["GET"])
@staff_blp.alt_response(200, schema=PortalSettingsOut)
def get_portal_settings(institution_id):
    with staff_rpc() as proxy:
        return proxy.auth.portal_settings(institution_id)


@staff_blp.route("/institutions/<int:institution_id>/portal-settings", methods=["PUT"])
@staff_blp.arguments(PortalSettingsIn)
@staff_blp.alt_response(200, schema=PortalSettingsOut)
def save_portal_settings(data, institution_id):
    with staff_rpc() as proxy:
        return proxy.auth.save_portal_settings(institution_id, body())
