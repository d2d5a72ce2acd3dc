"""API of contact compliance (the activities service's ``compliance``): each
jurisdiction's contact policy and its versions, the compliance log of refused and
overridden verdicts (a page, or CSV for the compliance officer), and a debtor's contact
preferences and consent with their own refusals (the 360° view).

Bodies and query strings are validated here with the service's schemas for a quick
answer; the service validates again, enforces permissions and scope (a debtor out of
reach answers 404, like a missing one).
"""
from __future__ import annotations

from flask import Response, request
from marshmallow import fields, validate

from activities.contracts import (ComplianceEntryOut, ComplianceQuery, PolicyOut, PolicyWrite,
                                  PreferencesOut, PreferencesWrite)
from recaudo_common.validation import Schema, page_schema

from .. import auth
from ..rpc import rpc
from .openapi import file_response
from ._views import Blueprint, query_args

blp = Blueprint("compliance", __name__, url_prefix="/api/v1",
                description="Cumplimiento de contacto: políticas por jurisdicción con sus "
                            "versiones, bitácora de cumplimiento y preferencias del deudor")
blp.before_request(auth.require_api_user)

JURISDICTION = r"^([A-Za-z]{2}|\*)$"


class PolicyQuery(Schema):
    jurisdiction = fields.String(validate=validate.Regexp(JURISDICTION))


CompliancePage = page_schema(ComplianceEntryOut, "ComplianceLogPage")


class DebtorCompliance(Schema):
    preferences = fields.Nested(PreferencesOut, allow_none=True)
    log = fields.List(fields.Nested(ComplianceEntryOut))


@blp.route("/contact-policies", methods=["GET"])
@blp.arguments(PolicyQuery, location="query")
@blp.alt_response(200, schema=PolicyOut(many=True))
def list_policies(query):
    """Cada versión de la política de contacto de cada jurisdicción (``*``: la de las
    demás), con sus reglas en el orden en que se evalúan (compliance.manage o
    activities.manage)."""
    with rpc() as proxy:
        return proxy.activities.list_contact_policies(query.get("jurisdiction"))


@blp.route("/contact-policies/<jurisdiction>", methods=["POST"])
@blp.arguments(PolicyWrite)
@blp.alt_response(201, schema=PolicyOut)
def save_policy(_, jurisdiction):
    """Nueva versión de la política de una jurisdicción, vigente desde ``effective_from``
    (compliance.manage); las anteriores se conservan."""
    with rpc() as proxy:
        return proxy.activities.save_contact_policy(
            jurisdiction, request.get_json(silent=True) or {}), 201


@blp.route("/compliance-log", methods=["GET"])
@blp.arguments(ComplianceQuery, location="query")
@blp.alt_response(200, schema=CompliancePage)
def compliance_log(_):
    """Contactos rechazados o autorizados contra la política, del más reciente al más
    antiguo, en las instituciones del usuario (compliance.manage)."""
    with rpc() as proxy:
        return proxy.activities.compliance_log(query_args(ComplianceQuery))


@blp.route("/compliance-log.csv", methods=["GET"])
@blp.arguments(ComplianceQuery, location="query")
@blp.doc(responses={"200": file_response("Bitácora de cumplimiento en CSV", "text/csv")})
def compliance_log_csv(_):
    """La bitácora de cumplimiento con los mismos filtros, como CSV (compliance.manage)."""
    with rpc() as proxy:
        text = proxy.activities.compliance_log_csv(query_args(ComplianceQuery))
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=bitacora_cumplimiento.csv"})


@blp.route("/debtors/<int:debtor_id>/compliance", methods=["GET"])
@blp.alt_response(200, schema=DebtorCompliance)
def debtor_compliance(debtor_id):
    """Preferencias de contacto del deudor y sus contactos rechazados o autorizados."""
    with rpc() as proxy:
        return proxy.activities.debtor_compliance(debtor_id)


@blp.route("/debtors/<int:debtor_id>/contact-preferences", methods=["PUT"])
@blp.arguments(PreferencesWrite)
@blp.alt_response(200, schema=PreferencesOut)
def save_preferences(_, debtor_id):
    """Lo que el deudor pidió: consentimiento por canal (con fuente y fecha), cese de
    comunicaciones, abogado, horarios inconvenientes, idioma (activities.log)."""
    with rpc() as proxy:
        return proxy.activities.save_debtor_preferences(
            debtor_id, request.get_json(silent=True) or {})
