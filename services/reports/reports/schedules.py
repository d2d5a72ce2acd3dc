"""Scheduled reports: when a schedule comes due, the period it covers, and a run.

A run asks the auth service for the owner's identity as it is now (a disabled owner's
schedule stops; one who lost ``reports.view`` or the institution gets a refused run),
asks the owning service for the report with that identity, renders it with the shared
exports (``recaudo_common.reporting``) and hands it to the messaging service to email to
the recipients as an attachment (``messaging.send_report``). The file is kept with the
run, so it can be downloaded again whatever became of the email.
"""
from __future__ import annotations

import base64
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (ValidationError, fields, pre_load, validate, validates,
                         validates_schema)

from recaudo_common import reporting
from recaudo_common.reporting import REPORTS, STAGES
from recaudo_common.validation import Schema

from .models import FORMATS, FREQUENCIES, Schedule

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


def normalise(data: dict) -> dict:
    """Only the fields the frequency uses."""
    if data["frequency"] != "weekly":
        data["weekday"] = None
    if data["frequency"] != "monthly":
        data["month_day"] = None
    return data


def next_run(schedule, after: datetime) -> datetime:
    """The first time strictly after ``after`` the schedule comes due (UTC)."""
    zone = ZoneInfo(schedule.time_zone)
    day = after.astimezone(zone).date()
    for offset in range(0, 400):
        candidate = day + timedelta(days=offset)
        if schedule.frequency == "weekly" and candidate.weekday() != schedule.weekday:
            continue
        if schedule.frequency == "monthly" and candidate.day != schedule.month_day:
            continue
        at = datetime.combine(candidate, time(schedule.hour), zone)
        if at > after:
            return at.astimezone(timezone.utc)
    raise ValueError("no next run")   # unreachable for valid schedules


def period(frequency: str, day: date) -> tuple[date, date]:
    """What a run on ``day`` covers: yesterday, the last seven days, or last month."""
    if frequency == "daily":
        return day - timedelta(days=1), day - timedelta(days=1)
    if frequency == "weekly":
        return day - timedelta(days=7), day - timedelta(days=1)
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def query_for(schedule, first: date, last: date) -> dict:
    report = REPORTS[schedule.report]
    query = dict(schedule.filters or {})
    if schedule.institution_id is not None:
        query["institution_id"] = schedule.institution_id
    if report.dated:
        query.update(date_from=first.isoformat(), date_to=last.isoformat())
    else:
        query["as_of"] = last.isoformat()
    if report.groups:
        query.setdefault("group_by", list(report.default_groups))
    return query


def render(proxy, schedule, first: date, last: date) -> dict:
    """The report of the period, asked with ``proxy``'s identity, as a file."""
    report = REPORTS[schedule.report]
    query = query_for(schedule, first, last)
    answer = reporting.run(proxy, report, query)
    names = reporting.Names.load(proxy, report, query)
    table = reporting.tabulate(report, answer, names, query)
    content = reporting.EXPORTERS[schedule.format](table)
    return {"filename": reporting.filename(report, query, schedule.format),
            "content_type": reporting.MIME[schedule.format].split(";")[0],
            "content": content, "rows": len(table.rows), "title": table.title}


def email(schedule: Schedule, rendered: dict, first: date, last: date) -> dict:
    """What ``messaging.send_report`` is asked to send."""
    title = rendered["title"]
    span = first.isoformat() if first == last else f"{first.isoformat()} – {last.isoformat()}"
    return {
        "recipients": list(schedule.recipients),
        "subject": schedule.subject or f"Recaudo · {title} · {span}",
        "body": (f"{title}, {span}: {rendered['rows']} filas en el archivo adjunto.\n"
                 "Envío programado desde Recaudo; quien lo programó puede cambiarlo o "
                 "cancelarlo en Reportes → Programados."),
        "institution_id": schedule.institution_id,
        "attachment": {"filename": rendered["filename"],
                       "content_type": rendered["content_type"],
                       "content_b64": base64.b64encode(rendered["content"]).decode()},
    }
