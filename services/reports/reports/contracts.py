"""marshmallow schemas of the reports service's RPC answers (inputs: schedules.py)."""
from marshmallow import fields

from recaudo_common.validation import Schema


class RunOut(Schema):
    id = fields.Integer()
    schedule_id = fields.Integer()
    period_from = fields.Date(allow_none=True)
    period_to = fields.Date(allow_none=True)
    started_at = fields.AwareDateTime()
    state = fields.String(metadata={"description": "sent | failed"})
    message = fields.String()
    filename = fields.String(allow_none=True)
    size_bytes = fields.Integer()


class ScheduleOut(Schema):
    id = fields.Integer()
    owner_id = fields.Integer()
    institution_id = fields.Integer(allow_none=True)
    report = fields.String()
    filters = fields.Dict()
    format = fields.String()
    frequency = fields.String(metadata={"description": "daily | weekly | monthly"})
    weekday = fields.Integer(allow_none=True, metadata={"description": "0 lunes … 6 domingo"})
    month_day = fields.Integer(allow_none=True)
    hour = fields.Integer()
    time_zone = fields.String()
    recipients = fields.List(fields.String())
    subject = fields.String()
    active = fields.Boolean()
    next_run_at = fields.AwareDateTime()
    created_at = fields.AwareDateTime()
    last_run = fields.Nested(RunOut, allow_none=True)
