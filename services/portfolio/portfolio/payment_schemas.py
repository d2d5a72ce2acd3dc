"""marshmallow schemas of the portfolio's payment RPCs: instructions, bank details,
providers and the triage of payments nobody could match."""
from marshmallow import ValidationError, fields, validate, validates

from recaudo_common.validation import PageQuery, Schema

from . import payment_refs

Money = fields.Decimal(places=2, as_string=True)


class PaymentInstructionsOut(Schema):
    account_id = fields.Integer()
    account_number = fields.String()
    institution_id = fields.Integer()
    #: 16 digits, the last two ISO 7064 MOD 97-10 check digits
    reference = fields.String()
    #: the institution's collection CLABE (SPEI), or null when not configured
    clabe = fields.String(allow_none=True)
    bank_name = fields.String()
    beneficiary = fields.String()
    #: what a bank window or an OXXO-style store asks for with the reference
    convenio = fields.String()
    #: what goes in the SPEI transfer's "concepto" (the reference)
    spei_concept = fields.String()
    amount_due = Money
    balance = Money
    currency = fields.String()


class PaymentSettingsWrite(Schema):
    clabe = fields.String(allow_none=True, load_default=None)
    bank_name = fields.String(load_default="", validate=validate.Length(max=80))
    beneficiary = fields.String(load_default="", validate=validate.Length(max=120))
    convenio = fields.String(load_default="", validate=validate.Regexp(
        r"^[0-9A-Za-z-]{0,20}$", error="Hasta 20 letras, dígitos o guiones"))

    @validates("clabe")
    def _clabe(self, value, **_):
        if value and not payment_refs.is_valid_clabe(value):
            raise ValidationError("CLABE inválida: 18 dígitos con su dígito verificador")


class PaymentSettingsOut(Schema):
    institution_id = fields.Integer()
    clabe = fields.String(allow_none=True)
    bank_name = fields.String()
    beneficiary = fields.String()
    convenio = fields.String()


class ProviderWrite(Schema):
    name = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9-]{1,39}$", error="2 a 40 minúsculas, dígitos o guiones"))
    institution_id = fields.Integer(required=True)
    #: shown never again; at least 32 characters
    secret = fields.String(validate=validate.Length(min=32, max=200))
    active = fields.Boolean(load_default=True)


class ProviderOut(Schema):
    id = fields.Integer()
    name = fields.String()
    institution_id = fields.Integer()
    active = fields.Boolean()
    #: whether a secret is set (the secret itself is never shown back)
    has_secret = fields.Boolean()
    created_at = fields.DateTime()


class WebhookPayment(Schema):
    """The body a payment provider posts (signed)."""

    payment_id = fields.String(required=True, validate=validate.Length(min=1, max=80))
    reference = fields.String(required=True, validate=validate.Length(min=1, max=40))
    amount = fields.Decimal(required=True, places=None, validate=validate.Range(
        min=0, min_inclusive=False, max=999_999_999_999, error="Debe ser mayor que 0"))
    currency = fields.String(load_default="MXN", validate=validate.Length(equal=3))
    paid_at = fields.AwareDateTime(required=True)

    @validates("amount")
    def _places(self, value, **_):
        if value.as_tuple().exponent < -2:
            raise ValidationError("A lo más dos decimales")


class NotificationOut(Schema):
    id = fields.Integer()
    provider = fields.String()
    institution_id = fields.Integer()
    payment_id = fields.String()
    reference = fields.String()
    amount = Money
    currency = fields.String()
    paid_at = fields.DateTime()
    received_at = fields.DateTime()
    #: credited | unmatched (in triage) | assigned (credited from triage) | dismissed
    status = fields.String()
    account_id = fields.Integer(allow_none=True)
    movement_id = fields.Integer(allow_none=True)
    note = fields.String()


class NotificationPage(Schema):
    items = fields.List(fields.Nested(NotificationOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class TriageQuery(PageQuery):
    status = fields.String(load_default="unmatched", validate=validate.OneOf(
        ["unmatched", "assigned", "dismissed", "credited"]))
    institution_id = fields.Integer()


class TriageAssign(Schema):
    account_id = fields.Integer(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=300))


class TriageDismiss(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=300))
