"""API of the contact log and what hangs from it: activities (logging, corrections, an
account's history and the verification of its hash chain), the result-code catalogue
and each institution's settings, promises to pay, disputes (aclaraciones), the shared
agenda with its private iCalendar feed, and productivity.

Bodies and query strings are validated here with the activities service's own schemas
for a quick answer; the service validates again, enforces permissions and scope (an
account, activity or dispute outside the caller's reach answers 404, like a missing
one) and dumps its answers, which these views only document. The hot path, logging an
activity (and its correction), is validated once, by the service: its body is only
documented here (``_documented_body``) and goes on as sent.

The calendar feed (``GET /ics/<token>.ics``) lives outside ``/api/v1`` on a blueprint of
its own: calendar apps cannot log in, so the private token in the address is the
credential and the service checks it.
"""
from __future__ import annotations

from flask import Response, url_for
from marshmallow import fields

from activities.contracts import (ActivityOut, ActivityWrite, AgendaOut, AgendaQuery,
                                  AgendaWrite, ApprovalOut, CorrectionWrite, Delegate, DisputeOut,
                                  DisputeResolve, DisputeWrite, HistoryQuery, InstalmentOut,
                                  OverdueQuery, ProductivityQuery, PromiseOut, ResultCodeOut,
                                  ResultCodeWrite, SettingsOut, SettingsWrite)
from recaudo_common.validation import Schema, page_schema

from .. import auth
from ..rpc import rpc
from .openapi import file_response
from ._views import Blueprint, body, query_args, sent_body, with_idempotency_key

blp = Blueprint("activities", __name__, url_prefix="/api/v1",
                description="Gestiones: bitácora de contactos con su cadena de integridad, "
                            "códigos de resultado, promesas de pago, aclaraciones, agenda y "
                            "productividad")
blp.before_request(auth.require_api_user)

calendar_blp = Blueprint("calendar", __name__, url_prefix="/ics",
                         description="Calendario privado de la agenda (iCalendar), para "
                                     "suscribirse desde Outlook o el teléfono")

def _documented_body(schema):
    """The view's JSON body documented as ``schema`` without loading it here: the service
    loads it (the same schema, the same 422 naming the fields)."""
    return blp.doc(requestBody={"required": True,
                                "content": {"application/json": {"schema": schema}}})



# --- documentation of the answers ----------------------------------------------------------

class PromiseInstalment(InstalmentOut):
    """(Named apart from the portfolio's instalments: OpenAPI names schemas by class.)"""


class Promise(PromiseOut):
    instalments = fields.List(fields.Nested(PromiseInstalment))


class ActivityLogged(ActivityOut):
    promise = fields.Nested(Promise, allow_none=True)
    approval = fields.Nested(ApprovalOut, allow_none=True,
                             metadata={"description": "la promesa fuera de los límites de la "
                                                      "institución espera esta aprobación"})
    agenda_item_id = fields.Integer(allow_none=True,
                                    metadata={"description": "la llamada programada, si hubo"})


class HistoryItem(ActivityOut):
    result_label = fields.String(allow_none=True)
    corrected_by_id = fields.Integer(allow_none=True,
                                     metadata={"description": "la entrada que corrige ésta"})


HistoryPage = page_schema(HistoryItem, "ActivityHistoryPage")
DisputePage = page_schema(DisputeOut, "DisputePage")


class ChainCheck(Schema):
    account_id = fields.Integer()
    ok = fields.Boolean()
    entries = fields.Integer(metadata={"description": "entradas revisadas"})
    broken_id = fields.Integer(allow_none=True,
                               metadata={"description": "la primera entrada que rompe la cadena"})
    broken_seq = fields.Integer(allow_none=True)
    reason = fields.String()
    last_id = fields.Integer(allow_none=True)


class Settled(Schema):
    settled = fields.Integer(metadata={"description": "promesas vencidas resueltas"})


class ExpireRequest(Schema):
    today = fields.Date(load_default=None, allow_none=True,
                        metadata={"description": "AAAA-MM-DD; por omisión, el hoy de cada "
                                                 "institución"})


class IcsToken(Schema):
    token = fields.String(metadata={"description": "se muestra una sola vez"})
    url = fields.String(metadata={"description": "dirección para suscribirse al calendario"})


class ResultCodeQuery(Schema):
    include_inactive = fields.Boolean(load_default=False)


class ProductivityRow(Schema):
    day = fields.String()
    agent_id = fields.Integer()
    institution_id = fields.Integer()
    queue_id = fields.Integer(metadata={"description": "0: sin fila conocida"})
    activities = fields.Integer()
    calls = fields.Integer()
    visits = fields.Integer()
    emails = fields.Integer()
    faxes = fields.Integer()
    sms = fields.Integer()
    letters = fields.Integer()
    notes = fields.Integer()
    contacts = fields.Integer()
    promises_made = fields.Integer()
    promised_amount = fields.String()
    promises_kept = fields.Integer()
    kept_amount = fields.String()
    promises_broken = fields.Integer()
    amount_recovered = fields.String()


class ProductivityReport(Schema):
    rows = fields.List(fields.Nested(ProductivityRow))
    totals = fields.Nested(ProductivityRow)
    group_by = fields.List(fields.String())
    date_from = fields.String()
    date_to = fields.String()


# --- the contact log ---------------------------------------------------------------------------

@blp.route("/activities", methods=["POST"])
@_documented_body(ActivityWrite)
@blp.alt_response(201, schema=ActivityLogged)
def log_activity():
    """Registra una gestión (llamada, visita, correo, fax, SMS, carta o nota) con su
    resultado; si el resultado lo pide, con la promesa de pago o la llamada programada.
    Reintentar con el mismo encabezado ``Idempotency-Key`` (o ``idempotency_key``)
    responde la misma gestión sin registrarla dos veces. Una llamada saliente se revisa
    con la política de contacto a la hora en que empezó (y su teléfono, si lo indica): si
    no procede responde 409 nombrando ``phone`` (no llamar) o ``started_at`` (fuera del
    horario del deudor), y nada se registra; un administrador (activities.manage) la
    registra de todos modos con ``override.justification``, que queda en
    ``details.compliance_override``."""
    with rpc() as proxy:
        return proxy.activities.log_activity(sent_body()), 201


@blp.route("/activities/<int:activity_id>/corrections", methods=["POST"])
@_documented_body(CorrectionWrite)
@blp.alt_response(201, schema=ActivityOut)
def correct_activity(activity_id):
    """Corrige una gestión con una entrada nueva que la sustituye (la original se
    conserva: la bitácora sólo crece). Quien la registró, su supervisor o un administrador."""
    with rpc() as proxy:
        return proxy.activities.correct_activity(activity_id, sent_body()), 201


@blp.route("/activities/<int:activity_id>", methods=["GET"])
@blp.alt_response(200, schema=ActivityLogged)
def get_activity(activity_id):
    with rpc() as proxy:
        return proxy.activities.get_activity(activity_id)


@blp.route("/accounts/<int:account_id>/activities", methods=["GET"])
@blp.arguments(HistoryQuery, location="query")
@blp.alt_response(200, schema=HistoryPage)
def account_history(_, account_id):
    """Historial de gestiones de la cuenta, de la más reciente a la más antigua."""
    with rpc() as proxy:
        return proxy.activities.account_history(account_id, query_args(HistoryQuery))


@blp.route("/accounts/<int:account_id>/chain", methods=["GET"])
@blp.alt_response(200, schema=ChainCheck)
def verify_chain(account_id):
    """Verifica la cadena de huellas de la bitácora de la cuenta: ``ok``, o la primera
    entrada alterada o faltante (permiso activities.manage; un supervisor, las cuentas de su
    equipo: asignadas a sus gestores o con gestiones de ellos)."""
    with rpc() as proxy:
        return proxy.activities.verify_chain(account_id)


# --- result codes and settings ------------------------------------------------------------------

@blp.route("/institutions/<int:institution_id>/result-codes", methods=["GET"])
@blp.arguments(ResultCodeQuery, location="query")
@blp.alt_response(200, schema=ResultCodeOut(many=True))
def list_result_codes(query, institution_id):
    """Catálogo de códigos de resultado de la institución (``include_inactive`` para ver
    también los desactivados)."""
    with rpc() as proxy:
        return proxy.activities.list_result_codes(institution_id,
                                                         query["include_inactive"])


@blp.route("/result-codes", methods=["POST"])
@blp.arguments(ResultCodeWrite)
@blp.alt_response(201, schema=ResultCodeOut)
def create_result_code(_):
    """Agrega un código al catálogo de una institución (permiso activities.manage)."""
    with rpc() as proxy:
        return proxy.activities.save_result_code(body()), 201


@blp.route("/result-codes/<int:code_id>", methods=["PUT"])
@blp.arguments(ResultCodeWrite)
@blp.alt_response(200, schema=ResultCodeOut)
def update_result_code(_, code_id):
    """Edita un código (se desactiva con ``active`` falso; nunca se borra)."""
    with rpc() as proxy:
        return proxy.activities.save_result_code(body(), code_id)


@blp.route("/institutions/<int:institution_id>/activity-settings", methods=["GET"])
@blp.alt_response(200, schema=SettingsOut)
def get_settings(institution_id):
    """Plazo de las aclaraciones, ventana de atribución de pagos y zona horaria."""
    with rpc() as proxy:
        return proxy.activities.get_settings(institution_id)


@blp.route("/institutions/<int:institution_id>/activity-settings", methods=["PUT"])
@blp.arguments(SettingsWrite)
@blp.alt_response(200, schema=SettingsOut)
def save_settings(_, institution_id):
    with rpc() as proxy:
        return proxy.activities.save_settings(institution_id, body())


# --- promises ---------------------------------------------------------------------------------------

@blp.route("/accounts/<int:account_id>/promises", methods=["GET"])
@blp.alt_response(200, schema=Promise(many=True))
def account_promises(account_id):
    """Promesas de pago de la cuenta con sus parcialidades y su estado."""
    with rpc() as proxy:
        return proxy.activities.account_promises(account_id)


@blp.route("/promises/expire", methods=["POST"])
@blp.arguments(ExpireRequest)
@blp.alt_response(200, schema=Settled)
def expire_promises(_):
    """Resuelve ya las promesas vencidas de sus instituciones (incumplidas o cumplidas en
    parte); un proceso lo hace solo cada hora."""
    today = body().get("today")
    with rpc() as proxy:
        return proxy.activities.expire_promises(today)


# --- disputes ---------------------------------------------------------------------------------------

@blp.route("/disputes", methods=["POST"])
@blp.arguments(DisputeWrite)
@blp.alt_response(201, schema=DisputeOut)
def open_dispute(_):
    """Abre una aclaración: la cuenta queda en espera en las filas hasta resolverla; vence
    según el plazo de la institución (409 si ya tiene una abierta)."""
    with rpc() as proxy:
        return proxy.activities.open_dispute(body()), 201


@blp.route("/disputes/<int:dispute_id>/resolve", methods=["POST"])
@blp.arguments(DisputeResolve)
@blp.alt_response(200, schema=DisputeOut)
def resolve_dispute(_, dispute_id):
    """Resuelve una aclaración (una sola vez: 409 si ya fue resuelta)."""
    with rpc() as proxy:
        return proxy.activities.resolve_dispute(dispute_id, body())


@blp.route("/accounts/<int:account_id>/disputes", methods=["GET"])
@blp.alt_response(200, schema=DisputeOut(many=True))
def account_disputes(account_id):
    with rpc() as proxy:
        return proxy.activities.account_disputes(account_id)


@blp.route("/disputes/overdue", methods=["GET"])
@blp.arguments(OverdueQuery, location="query")
@blp.alt_response(200, schema=DisputePage)
def overdue_disputes(_):
    """Aclaraciones abiertas que pasaron su fecha límite, la más atrasada primero."""
    with rpc() as proxy:
        return proxy.activities.overdue_disputes(query_args(OverdueQuery))


# --- the agenda -------------------------------------------------------------------------------------

@blp.route("/agenda", methods=["GET"])
@blp.arguments(AgendaQuery, location="query")
@blp.alt_response(200, schema=AgendaOut(many=True))
def agenda_for(_):
    """Pendientes (llamadas y visitas) de un rango de días: los suyos, los de un gestor de
    su equipo (``agent_id``) o los de un equipo (``team_id``)."""
    with rpc() as proxy:
        return proxy.activities.agenda_for(query_args(AgendaQuery))


@blp.route("/agenda", methods=["POST"])
@blp.arguments(AgendaWrite)
@blp.alt_response(201, schema=AgendaOut)
def schedule_callback(_):
    """Agenda una llamada o visita para usted, un compañero o un equipo. Reintentar con el
    mismo encabezado ``Idempotency-Key`` (o ``idempotency_key``) responde el mismo
    pendiente sin agendarlo dos veces."""
    with rpc() as proxy:
        return proxy.activities.schedule_callback(with_idempotency_key(body())), 201


@blp.route("/agenda/<int:item_id>/delegate", methods=["POST"])
@blp.arguments(Delegate)
@blp.alt_response(200, schema=AgendaOut)
def delegate_agenda_item(_, item_id):
    with rpc() as proxy:
        return proxy.activities.delegate_agenda_item(item_id, body())


@blp.route("/agenda/<int:item_id>/done", methods=["POST"])
@blp.alt_response(200, schema=AgendaOut)
def mark_agenda_done(item_id):
    with rpc() as proxy:
        return proxy.activities.mark_agenda_done(item_id)


def feed_url(token: str) -> str:
    """The absolute address calendar apps subscribe to."""
    return url_for("calendar.ics_feed", token=token, _external=True)


@blp.route("/agenda/ics-token", methods=["POST"])
@blp.alt_response(201, schema=IcsToken)
def create_ics_token():
    """Crea la dirección privada de su calendario (la anterior deja de funcionar)."""
    with rpc() as proxy:
        token = proxy.activities.create_ics_token()["token"]
    return {"token": token, "url": feed_url(token)}, 201


@blp.route("/agenda/ics-token", methods=["DELETE"])
@blp.alt_response(204, description="Calendario privado desactivado")
def revoke_ics_token():
    with rpc() as proxy:
        proxy.activities.revoke_ics_token()
    return "", 204


@calendar_blp.route("/<token>.ics", methods=["GET"])
@calendar_blp.doc(security=[])    # public: the token in the path is the key
@calendar_blp.doc(responses={"200": file_response("Su agenda (RFC 5545)", "text/calendar")})
def ics_feed(token):
    """Su agenda en formato iCalendar; la dirección privada es la credencial."""
    with auth.anonymous_rpc() as proxy:
        text = proxy.activities.ics_feed(token)
    return Response(text, mimetype="text/calendar",
                    headers={"Cache-Control": "private, max-age=300",
                             "Content-Disposition": 'inline; filename="agenda.ics"'})


# --- productivity -------------------------------------------------------------------------------------

@blp.route("/productivity", methods=["GET"])
@blp.arguments(ProductivityQuery, location="query")
@blp.alt_response(200, schema=ProductivityReport)
def productivity(_):
    """Productividad en un rango de días agrupada por ``group_by`` (day, agent,
    institution, queue; repetible): gestiones por tipo, contactos, promesas y su monto,
    promesas cumplidas y monto recuperado. Quien tiene reports.view ve a todos los de sus
    instituciones; un supervisor, a su equipo; los demás, lo suyo."""
    with rpc() as proxy:
        return proxy.activities.productivity(query_args(ProductivityQuery))
