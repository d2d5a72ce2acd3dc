"""API of corporate email and letters: mailboxes (IMAP + SMTP accounts, passwords
write-only), their sync and server-side search, matching patterns, templates in Spanish
and English with preview, outbound email and fax with their delivery state, and the
inbound messages with the triage list and manual assignment.

Bodies and query strings are validated here with the messaging service's own schemas
for a quick answer; the service validates again, checks permissions and scope (a
mailbox, template or message of another institution answers 404) and the contact
policy (409 with the reason; an admin overrides with ``override.justification``).
"""
from __future__ import annotations

from marshmallow import fields

from messaging.contracts import (Assign, InboundDetail, InboundOut, InboundQuery, MailboxOut,
                                 MailboxWrite, OutboundDetail, OutboundOut, OutboundQuery,
                                 PatternOut, PatternWrite, PreviewRequest, SearchQuery, SendEmail,
                                 SendFax, MessagingSettingsOut, MessagingSettingsWrite, SendSms,
                                 SmsOut, SmsPreviewRequest, SmsSettingsOut, SmsSettingsWrite,
                                 TemplateOut, TemplateWrite)
from recaudo_common.validation import Schema, page_schema

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body, query_args, with_idempotency_key

blp = Blueprint("messaging", __name__, url_prefix="/api/v1",
                description="Correo y cartas: buzones IMAP/SMTP, búsqueda en el servidor, "
                            "patrones, plantillas, envío de correo y fax con su estado de "
                            "entrega, correo entrante y su bandeja de asignación")
blp.before_request(auth.require_api_user)


class MailboxQuery(Schema):
    institution_id = fields.Integer(load_default=None)


class TemplateQuery(Schema):
    include_inactive = fields.Boolean(load_default=False)


class MailboxCheck(Schema):
    ok = fields.Boolean()
    error = fields.String()
    exists = fields.Integer()
    uidvalidity = fields.Integer()
    idle = fields.Boolean()


class SyncResult(Schema):
    mailbox_id = fields.Integer()
    fetched = fields.Integer()
    new = fields.Integer()
    matched = fields.Integer()
    unmatched = fields.Integer()
    bounces = fields.Integer()
    duplicates = fields.Integer()
    activities = fields.Integer()
    resynced = fields.Boolean()
    error = fields.String()


class SearchHit(Schema):
    uid = fields.Integer()
    message_id = fields.String()
    from_name = fields.String()
    from_address = fields.String()
    subject = fields.String()
    date = fields.String(allow_none=True)
    size = fields.Integer()
    inbound_id = fields.Integer(allow_none=True, metadata={"description": "ya sincronizado"})


class SearchAnswer(Schema):
    total = fields.Integer()
    items = fields.List(fields.Nested(SearchHit))


class Preview(Schema):
    subject = fields.String()
    text = fields.String()
    html = fields.String()
    language = fields.String()
    emails = fields.List(fields.String())
    fax_numbers = fields.List(fields.String())
    debtor_id = fields.Integer()


OutboundPage = page_schema(OutboundOut, "OutboundMessagePage")
InboundPage = page_schema(InboundOut, "InboundMessagePage")


# --- mailboxes -----------------------------------------------------------------------------

@blp.route("/mailboxes", methods=["GET"])
@blp.arguments(MailboxQuery, location="query")
@blp.alt_response(200, schema=MailboxOut(many=True))
def list_mailboxes(query):
    """Buzones de las instituciones del usuario, con su último error de sincronización."""
    with rpc() as proxy:
        return proxy.messaging.list_mailboxes(query["institution_id"])


@blp.route("/mailboxes", methods=["POST"])
@blp.arguments(MailboxWrite)
@blp.alt_response(201, schema=MailboxOut)
def create_mailbox(_):
    """Da de alta un buzón (IMAP para leer, SMTP para enviar); las contraseñas se guardan
    cifradas y nunca se devuelven (permiso messaging.manage)."""
    with rpc() as proxy:
        return proxy.messaging.save_mailbox(body()), 201


@blp.route("/mailboxes/<int:mailbox_id>", methods=["GET"])
@blp.alt_response(200, schema=MailboxOut)
def get_mailbox(mailbox_id):
    with rpc() as proxy:
        return proxy.messaging.get_mailbox(mailbox_id)


@blp.route("/mailboxes/<int:mailbox_id>", methods=["PUT"])
@blp.arguments(MailboxWrite)
@blp.alt_response(200, schema=MailboxOut)
def update_mailbox(_, mailbox_id):
    """Edita un buzón; una contraseña vacía conserva la guardada."""
    with rpc() as proxy:
        return proxy.messaging.save_mailbox(body(), mailbox_id)


@blp.route("/mailboxes/<int:mailbox_id>/test", methods=["POST"])
@blp.alt_response(200, schema=MailboxCheck)
def test_mailbox(mailbox_id):
    """Prueba la conexión: entra al servidor IMAP y abre la carpeta."""
    with rpc() as proxy:
        return proxy.messaging.test_mailbox(mailbox_id)


@blp.route("/mailboxes/<int:mailbox_id>/sync", methods=["POST"])
@blp.alt_response(200, schema=SyncResult)
def sync_mailbox(mailbox_id):
    """Sincroniza ahora (el servicio lo hace solo cada 30 s): trae lo nuevo desde el último
    UID, lo asocia a deudores y registra las gestiones."""
    with rpc() as proxy:
        return proxy.messaging.sync_mailbox(mailbox_id)


@blp.route("/mailboxes/<int:mailbox_id>/search", methods=["GET"])
@blp.arguments(SearchQuery, location="query")
@blp.alt_response(200, schema=SearchAnswer)
def search_mailbox(_, mailbox_id):
    """Busca en el buzón con IMAP SEARCH en el servidor: remitente, asunto, texto, rango
    de fechas o un encabezado (se combinan con Y)."""
    with rpc() as proxy:
        return proxy.messaging.search_mailbox(mailbox_id, query_args(SearchQuery))


# --- settings and patterns -------------------------------------------------------------------

@blp.route("/institutions/<int:institution_id>/messaging-settings", methods=["GET"])
@blp.alt_response(200, schema=MessagingSettingsOut)
def get_settings(institution_id):
    """Dominio de la pasarela de fax y buzón de salida por omisión."""
    with rpc() as proxy:
        return proxy.messaging.get_settings(institution_id)


@blp.route("/institutions/<int:institution_id>/messaging-settings", methods=["PUT"])
@blp.arguments(MessagingSettingsWrite)
@blp.alt_response(200, schema=MessagingSettingsOut)
def save_settings(_, institution_id):
    with rpc() as proxy:
        return proxy.messaging.save_settings(institution_id, body())


@blp.route("/institutions/<int:institution_id>/match-patterns", methods=["GET"])
@blp.alt_response(200, schema=PatternOut(many=True))
def list_patterns(institution_id):
    """Expresiones regulares que buscan números de cuenta o de cliente en el correo entrante."""
    with rpc() as proxy:
        return proxy.messaging.list_patterns(institution_id)


@blp.route("/match-patterns", methods=["POST"])
@blp.arguments(PatternWrite)
@blp.alt_response(201, schema=PatternOut)
def create_pattern(_):
    with rpc() as proxy:
        return proxy.messaging.save_pattern(body()), 201


@blp.route("/match-patterns/<int:pattern_id>", methods=["PUT"])
@blp.arguments(PatternWrite)
@blp.alt_response(200, schema=PatternOut)
def update_pattern(_, pattern_id):
    with rpc() as proxy:
        return proxy.messaging.save_pattern(body(), pattern_id)


@blp.route("/match-patterns/<int:pattern_id>", methods=["DELETE"])
@blp.response(204)
def delete_pattern(pattern_id):
    with rpc() as proxy:
        proxy.messaging.delete_pattern(pattern_id)
    return "", 204


# --- templates -----------------------------------------------------------------------------

@blp.route("/institutions/<int:institution_id>/templates", methods=["GET"])
@blp.arguments(TemplateQuery, location="query")
@blp.alt_response(200, schema=TemplateOut(many=True))
def list_templates(query, institution_id):
    with rpc() as proxy:
        return proxy.messaging.list_templates(institution_id, query["include_inactive"])


@blp.route("/templates", methods=["POST"])
@blp.arguments(TemplateWrite)
@blp.alt_response(201, schema=TemplateOut)
def create_template(_):
    """Plantilla Jinja (asunto, texto y HTML opcional, en español y en inglés); sólo puede
    usar ``debtor``, ``account``, ``institution`` y ``today`` (y ``portal_link`` en el correo
    que envía una liga del portal del deudor). Un campo que no existe se
    rechaza aquí (422, nombrando el campo de la plantilla)."""
    with rpc() as proxy:
        return proxy.messaging.save_template(body()), 201


@blp.route("/templates/<int:template_id>", methods=["GET"])
@blp.alt_response(200, schema=TemplateOut)
def get_template(template_id):
    with rpc() as proxy:
        return proxy.messaging.get_template(template_id)


@blp.route("/templates/<int:template_id>", methods=["PUT"])
@blp.arguments(TemplateWrite)
@blp.alt_response(200, schema=TemplateOut)
def update_template(_, template_id):
    with rpc() as proxy:
        return proxy.messaging.save_template(body(), template_id)


# --- sending -------------------------------------------------------------------------------

@blp.route("/messages/preview", methods=["POST"])
@blp.arguments(PreviewRequest)
@blp.alt_response(200, schema=Preview)
def preview(_):
    """La plantilla llena con los datos de la cuenta (no envía ni registra nada)."""
    with rpc() as proxy:
        return proxy.messaging.preview(body())


@blp.route("/messages/email", methods=["POST"])
@blp.arguments(SendEmail)
@blp.alt_response(201, schema=OutboundOut)
def send_email(_):
    """Pone en cola un correo al deudor desde una plantilla (con documentos adjuntos) y lo
    registra como gestión; el estado pasa de ``queued`` a ``sent`` o ``failed``. Fuera de
    horario o a un correo marcado «no contactar» responde 409 con el motivo. Reintentar con
    el mismo ``Idempotency-Key`` responde el mismo mensaje."""
    with rpc() as proxy:
        return proxy.messaging.send_email(with_idempotency_key(body())), 201


@blp.route("/messages/fax", methods=["POST"])
@blp.arguments(SendFax)
@blp.alt_response(201, schema=OutboundOut)
def send_fax(_):
    """Envía la carta en PDF a la pasarela de fax de la institución (``<número>@<dominio>``)
    y la registra como gestión de fax; el PDF queda en los documentos del deudor."""
    with rpc() as proxy:
        return proxy.messaging.send_fax(with_idempotency_key(body())), 201


@blp.route("/messages", methods=["GET"])
@blp.arguments(OutboundQuery, location="query")
@blp.alt_response(200, schema=OutboundPage)
def list_outbound(_):
    """Correos y faxes enviados con su estado de entrega (de un deudor, o todos)."""
    with rpc() as proxy:
        return proxy.messaging.list_outbound(query_args(OutboundQuery))


@blp.route("/messages/<int:message_id>", methods=["GET"])
@blp.alt_response(200, schema=OutboundDetail)
def get_outbound(message_id):
    with rpc() as proxy:
        return proxy.messaging.get_outbound(message_id)


# --- SMS -------------------------------------------------------------------------------------

class SmsPreviewOut(Schema):
    text = fields.String()
    encoding = fields.String(metadata={"description": "gsm7 | ucs2"})
    units = fields.Integer(metadata={"description": "septetos (GSM-7) o unidades UTF-16 (UCS-2)"})
    segments = fields.Integer()
    per_segment = fields.Integer()
    phones = fields.List(fields.String())
    debtor_id = fields.Integer()


@blp.route("/institutions/<int:institution_id>/sms-settings", methods=["GET"])
@blp.alt_response(200, schema=SmsSettingsOut)
def get_sms_settings(institution_id):
    """La pasarela de SMS de la institución (la contraseña y el token no se devuelven)."""
    with rpc() as proxy:
        return proxy.messaging.get_sms_settings(institution_id)


@blp.route("/institutions/<int:institution_id>/sms-settings", methods=["PUT"])
@blp.arguments(SmsSettingsWrite)
@blp.alt_response(200, schema=SmsSettingsOut)
def save_sms_settings(_, institution_id):
    """URL de ``sendsms`` de la pasarela (Kannel), usuario, contraseña, remitente y el token
    que su ``get-url`` envía a ``/kannel/mo`` del servicio de mensajería; palabras de baja."""
    with rpc() as proxy:
        return proxy.messaging.save_sms_settings(institution_id, body())


@blp.route("/sms/preview", methods=["POST"])
@blp.arguments(SmsPreviewRequest)
@blp.alt_response(200, schema=SmsPreviewOut)
def preview_sms(_):
    """El texto de la plantilla como saldría por SMS, con su codificación (GSM-7 o UCS-2)
    y el número de segmentos (no envía nada)."""
    with rpc() as proxy:
        return proxy.messaging.preview_sms(body())


@blp.route("/sms", methods=["POST"])
@blp.arguments(SendSms)
@blp.alt_response(201, schema=SmsOut)
def send_sms(_):
    """Pone en cola un SMS al deudor desde una plantilla y lo registra como gestión; el
    estado pasa de ``queued`` a ``sent`` y, con el acuse de la red, a ``delivered`` o
    ``failed``. Fuera de horario o a un número marcado «no contactar» (p. ej. tras una
    respuesta BAJA) responde 409 con el motivo."""
    with rpc() as proxy:
        return proxy.messaging.send_sms(with_idempotency_key(body())), 201


@blp.route("/debtors/<int:debtor_id>/sms", methods=["GET"])
@blp.alt_response(200, schema=SmsOut(many=True))
def list_sms(debtor_id):
    """La conversación por SMS con el deudor (enviados con su estado y recibidos)."""
    with rpc() as proxy:
        return proxy.messaging.list_sms(debtor_id)


# --- inbound and triage ----------------------------------------------------------------------

@blp.route("/inbound-messages", methods=["GET"])
@blp.arguments(InboundQuery, location="query")
@blp.alt_response(200, schema=InboundPage)
def list_inbound(_):
    """Correo recibido; ``state=unmatched`` es la bandeja de asignación."""
    with rpc() as proxy:
        return proxy.messaging.list_inbound(query_args(InboundQuery))


@blp.route("/inbound-messages/<int:inbound_id>", methods=["GET"])
@blp.alt_response(200, schema=InboundDetail)
def get_inbound(inbound_id):
    with rpc() as proxy:
        return proxy.messaging.get_inbound(inbound_id)


@blp.route("/inbound-messages/<int:inbound_id>/assign", methods=["POST"])
@blp.arguments(Assign)
@blp.alt_response(200, schema=InboundDetail)
def assign_inbound(_, inbound_id):
    """Asigna a mano un correo sin deudor a una cuenta: se registra como gestión de correo
    entrante y sus adjuntos pasan a los documentos del deudor."""
    with rpc() as proxy:
        return proxy.messaging.assign_inbound(inbound_id, body())
