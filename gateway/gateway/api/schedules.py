"""API of scheduled reports: each user's own standing orders to email a report daily,
weekly or monthly, their runs, and a run's file. The reports service owns them, checks
``reports.view`` and ownership (another user's schedule answers 404) and asks the
owning service for the report with the owner's identity, so a schedule never shows
more than its owner may see.
"""
from __future__ import annotations

import base64

from flask import Response
from marshmallow import fields

from reports.contracts import RunOut, ScheduleOut
from recaudo_common.report_exports import FORMATS, MIME
from recaudo_common.validation import Schema

from .. import auth
from ..rpc import rpc
from .openapi import file_response
from ._views import Blueprint, body

blp = Blueprint("report_schedules", __name__, url_prefix="/api/v1",
                description="Envíos programados de reportes por correo (diarios, semanales, "
                            "mensuales) y sus ejecuciones")
blp.before_request(auth.require_api_user)


class ScheduleDoc(Schema):
    """The body of a schedule (the service validates it)."""

    report = fields.String(required=True, metadata={"description": "productivity, aging, …"})
    institution_id = fields.Integer(allow_none=True)
    filters = fields.Dict(metadata={"description": "los filtros del reporte, sin fechas"})
    format = fields.String(metadata={"description": "csv | xlsx | pdf"})
    frequency = fields.String(required=True, metadata={"description": "daily | weekly | monthly"})
    weekday = fields.Integer(allow_none=True, metadata={"description": "semanal: 0 lunes … 6"})
    month_day = fields.Integer(allow_none=True, metadata={"description": "mensual: 1 a 28"})
    hour = fields.Integer(metadata={"description": "0 a 23, en time_zone"})
    time_zone = fields.String()
    recipients = fields.List(fields.String(), required=True)
    subject = fields.String()
    active = fields.Boolean()



@blp.route("/report-schedules", methods=["GET"])
@blp.alt_response(200, schema=ScheduleOut(many=True))
def list_schedules():
    """Mis envíos programados, con su última ejecución."""
    with rpc() as proxy:
        return proxy.reports.list_schedules()


@blp.route("/report-schedules", methods=["POST"])
@blp.doc(requestBody={"content": {"application/json": {"schema": ScheduleDoc}}})
@blp.alt_response(201, schema=ScheduleOut)
def create_schedule():
    """Programar un reporte. El reporte se pide una vez al guardar, con los permisos de
    quien programa: un filtro desconocido o una institución ajena se rechazan aquí."""
    with rpc() as proxy:
        return proxy.reports.save_schedule(body()), 201


@blp.route("/report-schedules/<int:schedule_id>", methods=["PUT"])
@blp.doc(requestBody={"content": {"application/json": {"schema": ScheduleDoc}}})
@blp.alt_response(200, schema=ScheduleOut)
def update_schedule(schedule_id):
    with rpc() as proxy:
        return proxy.reports.save_schedule(body(), schedule_id)


@blp.route("/report-schedules/<int:schedule_id>", methods=["DELETE"])
@blp.alt_response(204, description="Cancelado")
def delete_schedule(schedule_id):
    with rpc() as proxy:
        proxy.reports.delete_schedule(schedule_id)
    return "", 204


@blp.route("/report-schedules/<int:schedule_id>/run", methods=["POST"])
@blp.alt_response(200, schema=RunOut)
def run_schedule(schedule_id):
    """Ejecutarlo ahora (el periodo que cubriría hoy); no mueve el siguiente envío."""
    with rpc() as proxy:
        return proxy.reports.run_schedule(schedule_id)


@blp.route("/report-schedules/<int:schedule_id>/runs", methods=["GET"])
@blp.alt_response(200, schema=RunOut(many=True))
def list_runs(schedule_id):
    with rpc() as proxy:
        return proxy.reports.list_runs(schedule_id)


@blp.route("/report-runs/<int:run_id>/file", methods=["GET"])
@blp.doc(responses={"200": file_response("El archivo de la ejecución",
                                         *(MIME[f] for f in FORMATS if f != "json"))})
def run_file(run_id):
    """El archivo que produjo una ejecución (se guardan las últimas diez)."""
    with rpc() as proxy:
        found = proxy.reports.run_file(run_id)
    return Response(base64.b64decode(found["content_b64"]), mimetype=found["content_type"],
                    headers={"Content-Disposition":
                             f'attachment; filename="{found["filename"]}"'})
