"""What crosses the reports service's boundary: a schedule as it is written (checked against
the report catalogue: its filters, groupings and stages) and the service's answers."""
from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError, fields, pre_load, validate, validates, validates_schema

from recaudo_common.report_catalogue import REPORTS, STAGES
from recaudo_common.validation import Schema

FREQUENCIES = ("daily", "weekly", "monthly")
FORMATS = ("csv", "xlsx", "pdf")
MAX_RECIPIENTS = 20
ID_FILTERS = ("team_id", "agent_id", "queue_id", "status_id")


class ScheduleWrite(Schema):
    report = fields.String(required=True, validate=validate.OneOf(list(REPORTS)))
    institution_id = fields.Integer(load_default=None, allow_none=True,
                                    validate=validate.Range(min=1))
    filters = fields.Dict(load_default=dict)
    format = fields.String(load_default="xlsx", validate=validate.OneOf(FORMATS))
    frequency = fields.String(required=True, validate=validate.OneOf(FREQUENCIES))
    weekday = fields.Integer(load_default=None, allow_none=True,
                             validate=validate.Range(min=0, max=6))
    month_day = fields.Integer(load_default=None, allow_none=True,
                               validate=validate.Range(min=1, max=28))
    hour = fields.Integer(load_default=7, validate=validate.Range(min=0, max=23))
    time_zone = fields.String(load_default="America/Mexico_City",
                              validate=validate.Length(min=1, max=60))
    recipients = fields.List(fields.Email(error_messages={"invalid": "Correo inválido"}),
                             required=True,
                             validate=validate.Length(min=1, max=MAX_RECIPIENTS))
    subject = fields.String(load_default="", validate=validate.Length(max=200))
    active = fields.Boolean(load_default=True)

    @pre_load
    def _lower(self, data, **_):
        if isinstance(data, dict) and isinstance(data.get("recipients"), list):
            data = {**data, "recipients": [r.strip().lower() if isinstance(r, str) else r
                                           for r in data["recipients"]]}
        return data

    @validates("time_zone")
    def _zone(self, value, **_):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Zona horaria desconocida") from None

    @validates_schema
    def _shape(self, data, **_):
        if data.get("frequency") == "weekly" and data.get("weekday") is None:
            raise ValidationError("Elija el día de la semana", "weekday")
        if data.get("frequency") == "monthly" and data.get("month_day") is None:
            raise ValidationError("Elija el día del mes (1 a 28)", "month_day")
        report = REPORTS.get(data.get("report"))
        if report is None:
            return
        problems = {}
        allowed = {*report.filters, "group_by"} - {"institution_id"}
        for name, value in (data.get("filters") or {}).items():
            if name not in allowed:
                problems[name] = ["Este reporte no se filtra por este campo"]
            elif name == "group_by":
                if not isinstance(value, list) or not report.groups or \
                        any(g not in report.groups for g in value):
                    problems[name] = ["Agrupación desconocida"]
            elif name == "stage":
                if value not in STAGES:
                    problems[name] = ["Etapa desconocida"]
            elif name in ID_FILTERS and (not isinstance(value, int) or isinstance(value, bool)
                                         or value < 0):
                problems[name] = ["Se esperaba un número"]
        if problems:
            raise ValidationError(problems, "filters")



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
