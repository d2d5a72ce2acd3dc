"""marshmallow schemas of what a debtor does in the portal (portal.py): the same rules
as an agent's input where they overlap (a promise is ``PromiseWrite``: no negative or
over-precise amount, dates in order), checked once here at the service's boundary."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from recaudo_common.validation import Schema

from .schemas import PromiseWrite

#: the channels a debtor may allow or refuse from the portal
PORTAL_CHANNELS = ("call", "sms", "email", "letter", "visit")
_HHMM = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="Formato HH:MM")


class PortalPromise(Schema):
    account_id = fields.Integer(required=True)
    promise = fields.Nested(PromiseWrite, required=True)


class PortalSettlement(Schema):
    account_id = fields.Integer(required=True)


class PortalCallback(Schema):
    account_id = fields.Integer(required=True)
    callback_at = fields.AwareDateTime(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=300))


class PortalDispute(Schema):
    account_id = fields.Integer(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=200))
    evidence = fields.String(load_default="", validate=validate.Length(max=4000))
    document_id = fields.Integer(load_default=None, allow_none=True)


class PortalPreferences(Schema):
    """Channels allowed (true) or refused (false), the hours that suit them, their language,
    or no contact at all (``opt_out``)."""

    channels = fields.Dict(keys=fields.String(validate=validate.OneOf(PORTAL_CHANNELS)),
                           values=fields.Boolean(), load_default=dict)
    contact_from = fields.String(load_default=None, allow_none=True, validate=_HHMM)
    contact_until = fields.String(load_default=None, allow_none=True, validate=_HHMM)
    language = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(("es", "en")))
    opt_out = fields.Boolean(load_default=False)

    @validates_schema
    def _hours(self, data, **_):
        given = (data.get("contact_from"), data.get("contact_until"))
        if (given[0] is None) != (given[1] is None):
            raise ValidationError("Indique desde y hasta", "contact_until")
        if given[0] is not None and given[0] >= given[1]:
            raise ValidationError("Debe ser después de la hora de inicio", "contact_until")
