"""marshmallow schemas of the partners' webhook RPCs."""
from marshmallow import fields, validate

from recaudo_common.validation import PageQuery, Schema

from .models import PARTNER_EVENTS

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
