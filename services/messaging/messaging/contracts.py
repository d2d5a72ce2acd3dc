"""marshmallow schemas of the messaging service's RPC inputs and outputs.

Inputs reject what can be judged without the database or the servers (a port out of
range, an address that is not an address, an unsafe pattern); templates are checked
by ``templates.validate_sources`` with the same field names. Passwords are write-only:
no output schema has them.
"""
from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from recaudo_common.validation import Override, PageQuery, Schema

OUTBOUND_STATES = ("queued", "sent", "failed")
INBOUND_STATES = ("matched", "unmatched", "assigned", "bounce", "ignored")
PATTERN_TARGETS = ("account_number", "customer_number")
SMTP_SECURITY = ("none", "starttls", "ssl")

#: what an email address may be (parsing.clean_address also lowers it)
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
                      r"\.[A-Za-z]{2,63}$")


def is_address(value: str) -> bool:
    return bool(value) and len(value) <= 254 and bool(_ADDRESS.match(value))


_HOST = validate.Regexp(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253})$",
                        error="Nombre de servidor inválido")
_PORT = validate.Range(min=1, max=65535, error="Puerto entre 1 y 65535")


def _address(value):
    if not is_address(value or ""):
        raise ValidationError("No es una dirección de correo válida")


class MailboxWrite(Schema):
    institution_id = fields.Integer(required=True)
    team_id = fields.Integer(load_default=None, allow_none=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    address = fields.String(required=True, validate=_address)
    imap_host = fields.String(required=True, validate=_HOST)
    imap_port = fields.Integer(load_default=993, validate=_PORT)
    imap_tls = fields.Boolean(load_default=True)
    imap_user = fields.String(required=True, validate=validate.Length(min=1, max=254))
    #: required when creating; empty on an edit keeps the stored one
    imap_password = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(max=500))
    imap_folder = fields.String(load_default="INBOX", validate=validate.Length(min=1, max=200))
    smtp_host = fields.String(required=True, validate=_HOST)
    smtp_port = fields.Integer(load_default=587, validate=_PORT)
    smtp_security = fields.String(load_default="starttls", validate=validate.OneOf(SMTP_SECURITY))
    smtp_user = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=254))
    smtp_password = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(max=500))
    active = fields.Boolean(load_default=True)


class MailboxOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    team_id = fields.Integer(allow_none=True)
    name = fields.String()
    address = fields.String()
    imap_host = fields.String()
    imap_port = fields.Integer()
    imap_tls = fields.Boolean()
    imap_user = fields.String()
    imap_folder = fields.String()
    smtp_host = fields.String()
    smtp_port = fields.Integer()
    smtp_security = fields.String()
    smtp_user = fields.String(allow_none=True)
    active = fields.Boolean()
    uidvalidity = fields.Integer(allow_none=True)
    last_uid = fields.Integer()
    idle_supported = fields.Boolean(allow_none=True)
    last_sync_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_error_at = fields.AwareDateTime(allow_none=True)


class MessagingSettingsWrite(Schema):
    fax_domain = fields.String(load_default=None, allow_none=True, validate=_HOST)
    default_mailbox_id = fields.Integer(load_default=None, allow_none=True)


class MessagingSettingsOut(Schema):
    institution_id = fields.Integer()
    fax_domain = fields.String(allow_none=True)
    default_mailbox_id = fields.Integer(allow_none=True)


class PatternWrite(Schema):
    institution_id = fields.Integer(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    regex = fields.String(required=True, validate=validate.Length(min=1, max=300))
    target = fields.String(required=True, validate=validate.OneOf(PATTERN_TARGETS))
    active = fields.Boolean(load_default=True)
    sort_order = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000))

    # whether the expression is safe is judged by the service (parsing.check_pattern), after
    # the caller's permission and scope: a refusal never tells an outsider anything


class PatternOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    name = fields.String()
    regex = fields.String()
    target = fields.String()
    active = fields.Boolean()
    sort_order = fields.Integer()


class TemplateWrite(Schema):
    institution_id = fields.Integer(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    subject_es = fields.String(required=True, validate=validate.Length(min=1, max=300))
    text_es = fields.String(required=True, validate=validate.Length(min=1, max=50_000))
    html_es = fields.String(load_default="", validate=validate.Length(max=100_000))
    subject_en = fields.String(load_default="", validate=validate.Length(max=300))
    text_en = fields.String(load_default="", validate=validate.Length(max=50_000))
    html_en = fields.String(load_default="", validate=validate.Length(max=100_000))
    active = fields.Boolean(load_default=True)

    @validates_schema
    def _english(self, data, **_):
        if data.get("text_en") and not data.get("subject_en"):
            raise ValidationError("Indique el asunto en inglés", "subject_en")


class TemplateOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    name = fields.String()
    subject_es = fields.String()
    text_es = fields.String()
    html_es = fields.String()
    subject_en = fields.String()
    text_en = fields.String()
    html_en = fields.String()
    active = fields.Boolean()
    updated_at = fields.AwareDateTime()


#: what a ``portal_link`` may be: the debtor portal's personal link, nothing else
PORTAL_LINK = validate.Regexp(
    r"^https?://[^/\s]{1,200}/mi-cuenta/\d{1,10}/pl_[A-Za-z0-9_-]{20,80}$",
    error="Sólo una liga del portal del deudor")


class _Compose(Schema):
    account_id = fields.Integer(required=True)
    template_id = fields.Integer(required=True)
    language = fields.String(load_default="es", validate=validate.OneOf(("es", "en")))


class PreviewRequest(_Compose):
    channel = fields.String(load_default="email", validate=validate.OneOf(("email", "fax")))


class SendEmail(_Compose):
    #: checked by the service (parsing.clean_address), after permission
    to = fields.String(required=True, validate=validate.Length(max=254))
    #: the debtor portal's personal link the template's ``{{ portal_link }}`` prints
    portal_link = fields.String(load_default=None, allow_none=True, validate=PORTAL_LINK)
    mailbox_id = fields.Integer(load_default=None, allow_none=True)
    document_version_ids = fields.List(fields.Integer(),
                                       load_default=list, validate=validate.Length(max=10))
    override = fields.Nested(Override, load_default=None, allow_none=True)
    idempotency_key = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=100))


class SendFax(_Compose):
    #: checked by the service (FAX_NUMBER), after permission
    fax_number = fields.String(required=True, validate=validate.Length(max=40))
    mailbox_id = fields.Integer(load_default=None, allow_none=True)
    override = fields.Nested(Override, load_default=None, allow_none=True)
    idempotency_key = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=100))


class SendCampaignMessage(_Compose):
    """One message of a preventive campaign (the queues service's runner): messaging picks
    the debtor's address for the channel and answers a policy refusal instead of raising."""

    channel = fields.String(required=True, validate=validate.OneOf(("email", "sms", "letter")))
    campaign_id = fields.Integer(required=True)
    idempotency_key = fields.String(required=True, validate=validate.Length(min=1, max=100))
    #: the debtor's personal portal link in the message (email or SMS): made through auth
    #: once per run and debtor (``run_id``), printed where the template says
    #: ``{{ portal_link }}`` or else at the end
    portal_link = fields.Boolean(load_default=False)
    run_id = fields.Integer(load_default=None, allow_none=True)

    @validates_schema
    def _link(self, data, **_):
        if data.get("portal_link") and data["channel"] == "letter":
            raise ValidationError("Una carta no lleva la liga del portal", "portal_link")
        if data.get("portal_link") and data.get("run_id") is None:
            raise ValidationError("Falta la ejecución de la campaña", "run_id")


class ReportAttachment(Schema):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=200))
    content_type = fields.String(required=True, validate=validate.Length(min=3, max=120))
    content_b64 = fields.String(required=True)


class SendReport(Schema):
    """A scheduled report for people, not about a debtor (the reports service's runner)."""

    recipients = fields.List(fields.String(validate=validate.Length(max=254)), required=True,
                             validate=validate.Length(min=1, max=20))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=300))
    body = fields.String(required=True, validate=validate.Length(max=20_000))
    institution_id = fields.Integer(load_default=None, allow_none=True)
    attachment = fields.Nested(ReportAttachment, required=True)
    #: the same report period keeps the same Message-ID, so a resend reads as the same mail
    idempotency_key = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=100))


class OutboundOut(Schema):
    id = fields.Integer()
    uuid = fields.String()
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    account_id = fields.Integer()
    mailbox_id = fields.Integer(allow_none=True)
    channel = fields.String()
    template_id = fields.Integer(allow_none=True)
    campaign_id = fields.Integer(allow_none=True)
    language = fields.String()
    to_address = fields.String()
    fax_number = fields.String(allow_none=True)
    subject = fields.String()
    attachments = fields.List(fields.Dict())
    state = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.AwareDateTime()
    last_error = fields.String(allow_none=True)
    smtp_response = fields.String(allow_none=True)
    sent_at = fields.AwareDateTime(allow_none=True)
    failed_at = fields.AwareDateTime(allow_none=True)
    bounced_at = fields.AwareDateTime(allow_none=True)
    activity_id = fields.Integer(allow_none=True)
    created_by = fields.Integer()
    override_justification = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()


class OutboundDetail(OutboundOut):
    body_text = fields.String()
    body_html = fields.String()


class OutboundQuery(PageQuery):
    debtor_id = fields.Integer(load_default=None)
    account_id = fields.Integer(load_default=None)
    institution_id = fields.Integer(load_default=None)
    state = fields.String(load_default=None, validate=validate.OneOf(OUTBOUND_STATES))
    channel = fields.String(load_default=None, validate=validate.OneOf(("email", "fax")))


class InboundOut(Schema):
    id = fields.Integer()
    mailbox_id = fields.Integer()
    institution_id = fields.Integer()
    uid = fields.Integer()
    message_id = fields.String()
    from_address = fields.String()
    from_name = fields.String()
    subject = fields.String()
    sent_at = fields.AwareDateTime(allow_none=True)
    size = fields.Integer()
    attachments = fields.List(fields.Dict())
    problem = fields.String(allow_none=True)
    state = fields.String()
    matched_by = fields.String(allow_none=True)
    debtor_id = fields.Integer(allow_none=True)
    account_id = fields.Integer(allow_none=True)
    outbound_id = fields.Integer(allow_none=True)
    activity_id = fields.Integer(allow_none=True)
    assigned_by = fields.Integer(allow_none=True)
    synced_at = fields.AwareDateTime()


class InboundDetail(InboundOut):
    body_text = fields.String()


class InboundQuery(PageQuery):
    institution_id = fields.Integer(load_default=None)
    mailbox_id = fields.Integer(load_default=None)
    debtor_id = fields.Integer(load_default=None)
    state = fields.String(load_default=None, validate=validate.OneOf(INBOUND_STATES))


class Assign(Schema):
    account_id = fields.Integer(required=True)


class SearchQuery(Schema):
    """IMAP SEARCH criteria, combined with AND; at least one."""

    sender = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    subject = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    text = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    since = fields.Date(load_default=None)
    before = fields.Date(load_default=None)
    header_name = fields.String(load_default=None, validate=validate.Regexp(
        r"^[A-Za-z0-9-]{1,60}$", error="Nombre de encabezado inválido"))
    header_value = fields.String(load_default=None, validate=validate.Length(max=200))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))

    @validates_schema
    def _some(self, data, **_):
        keys = ("sender", "subject", "text", "since", "before", "header_name")
        if not any(data.get(k) for k in keys):
            raise ValidationError("Indique al menos un criterio", "_schema")
        if data.get("since") and data.get("before") and data["before"] < data["since"]:
            raise ValidationError("El fin no puede ser anterior al inicio", "before")
        if data.get("header_value") and not data.get("header_name"):
            raise ValidationError("Indique el encabezado", "header_name")
        for key in ("sender", "subject", "text", "header_value"):
            value = data.get(key)
            if value and any(ord(c) < 32 for c in value):
                raise ValidationError("Caracteres de control no permitidos", key)


# --- SMS ----------------------------------------------------------------------------------------

class SmsSettingsWrite(Schema):
    """An institution's SMS gateway; the password and the inbound token are write-only
    (left out on an update: kept)."""

    gateway_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"},
                             validate=validate.Length(max=300))
    username = fields.String(required=True, validate=validate.Length(min=1, max=120))
    password = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(min=1, max=200))
    inbound_token = fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=8, max=200))
    sender_id = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9+]{1,20}$", error="Número o nombre de 1 a 20 letras o dígitos"))
    opt_out_words = fields.String(load_default="BAJA,STOP", validate=validate.Regexp(
        r"^\s*[^,\s]+(\s*,\s*[^,\s]+)*\s*$", error="Palabras separadas por comas"))
    active = fields.Boolean(load_default=True)


class SmsSettingsOut(Schema):
    institution_id = fields.Integer()
    gateway_url = fields.String()
    username = fields.String()
    sender_id = fields.String()
    opt_out_words = fields.String()
    active = fields.Boolean()


class SmsPreviewRequest(_Compose):
    pass


class SendSms(_Compose):
    #: checked by the service (a number of the debtor's), after permission
    phone = fields.String(required=True, validate=validate.Length(min=1, max=40))
    override = fields.Nested(Override, load_default=None, allow_none=True)
    idempotency_key = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=100))


#: a debtor portal link's token (after ``pl_``) in a text: never shown (auth keeps its hash)
PORTAL_TOKEN = re.compile(r"(/mi-cuenta/\d{1,10}/pl_)[A-Za-z0-9_-]+")


def mask_portal_links(value: str) -> str:
    """``value`` with every portal link's token hidden (its address kept)."""
    return PORTAL_TOKEN.sub(lambda m: m.group(1) + "***", value)


class _Masked(fields.String):
    """A text shown with any debtor portal link's token hidden."""

    def _serialize(self, value, attr, obj, **kwargs):
        value = super()._serialize(value, attr, obj, **kwargs)
        return mask_portal_links(value) if value else value


class SendPortalLinkSms(Schema):
    """The debtor portal's personal link by SMS, in messaging's own short text."""

    account_id = fields.Integer(required=True)
    #: checked by the service (a number of the debtor's), after permission
    phone = fields.String(required=True, validate=validate.Length(min=1, max=40))
    portal_link = fields.String(required=True, validate=PORTAL_LINK)
    #: auth's link row: kept in the history entry's details
    link_id = fields.Integer(required=True)
    language = fields.String(load_default="es", validate=validate.OneOf(("es", "en")))
    idempotency_key = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=100))


class SmsOut(Schema):
    """One SMS of a debtor's conversation, with its delivery state (times in UTC)."""

    uuid = fields.String()
    institution_id = fields.Integer()
    debtor_id = fields.Integer(allow_none=True)
    account_id = fields.Integer(allow_none=True)
    direction = fields.String(metadata={"description": "outbound | inbound"})
    phone = fields.String()
    body = _Masked()
    encoding = fields.String(metadata={"description": "gsm7 | ucs2"})
    segments = fields.Integer()
    template_id = fields.Integer(allow_none=True)
    language = fields.String()
    state = fields.String(metadata={"description": "queued | sent | delivered | failed | received"})
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    activity_id = fields.Integer(allow_none=True)
    override_justification = fields.String(allow_none=True)
    created_at = fields.DateTime()


# --- partners' webhooks ------------------------------------------------------------------
#: the events a partner may subscribe to (each names its account)
PARTNER_EVENTS = ("payment_received", "promise_made", "promise_kept", "promise_broken",
                  "dispute_opened", "dispute_resolved", "stage_changed", "activity_logged")
DELIVERY_STATES = ("pending", "delivered", "failed")


EVENTS = fields.List(fields.String(validate=validate.OneOf(PARTNER_EVENTS)),
                     validate=validate.Length(min=1, max=len(PARTNER_EVENTS)))


class SubscriptionCreate(Schema):
    institution_id = fields.Integer(required=True)
    url = fields.String(required=True, validate=validate.Length(min=9, max=2000))
    events = fields.List(fields.String(validate=validate.OneOf(PARTNER_EVENTS)), required=True,
                         validate=validate.Length(min=1, max=len(PARTNER_EVENTS)))
    contact_email = fields.String(required=True, validate=validate.Length(max=254))


class SubscriptionChange(Schema):
    url = fields.String(validate=validate.Length(min=9, max=2000))
    events = fields.List(fields.String(validate=validate.OneOf(PARTNER_EVENTS)),
                         validate=validate.Length(min=1, max=len(PARTNER_EVENTS)))
    contact_email = fields.String(validate=validate.Length(max=254))
    active = fields.Boolean()


class SubscriptionOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())
    contact_email = fields.String()
    active = fields.Boolean()
    #: set while paused after repeated failures (``active: true`` resumes it)
    paused_at = fields.DateTime(allow_none=True)
    paused_reason = fields.String()
    failures_in_row = fields.Integer()
    created_at = fields.DateTime()


class SubscriptionCreated(SubscriptionOut):
    #: the signing secret, shown only now
    secret = fields.String()


class AttemptOut(Schema):
    attempted_at = fields.DateTime()
    status_code = fields.Integer(allow_none=True)
    error = fields.String()
    latency_ms = fields.Integer()


class DeliveryOut(Schema):
    id = fields.Integer()
    subscription_id = fields.Integer()
    event_id = fields.String()
    event_type = fields.String()
    account_id = fields.Integer()
    occurred_at = fields.DateTime()
    #: pending | delivered | failed (given up after 24 h)
    state = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String()
    last_latency_ms = fields.Integer(allow_none=True)
    log = fields.List(fields.Nested(AttemptOut))


class DeliveryPage(Schema):
    items = fields.List(fields.Nested(DeliveryOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class DeliveryQuery(PageQuery):
    pass
