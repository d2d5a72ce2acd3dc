"""Scheduled reports: when a schedule comes due, the period it covers, and a run.

A run asks the auth service for the owner's identity as it is now (a disabled owner's
schedule stops; one who lost ``reports.view`` or the institution gets a refused run),
asks the owning service for the report with that identity, renders it with the shared
catalogue and exports (``recaudo_common.report_catalogue``, ``report_exports``) and hands it
to the messaging service to email to the recipients as an attachment
(``messaging.send_report``). The file is kept with the run, so it can be downloaded again
whatever became of the email.
"""
from __future__ import annotations

import base64
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from recaudo_common import report_catalogue, report_exports
from recaudo_common.report_catalogue import REPORTS

from .models import Schedule

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
    answer = report_catalogue.run(proxy, report, query)
    names = report_catalogue.Names.load(proxy, report, query)
    table = report_catalogue.tabulate(report, answer, names, query)
    content = report_exports.EXPORTERS[schedule.format](table)
    return {"filename": report_exports.filename(report, query, schedule.format),
            "content_type": report_exports.MIME[schedule.format].split(";")[0],
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
