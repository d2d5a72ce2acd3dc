"""API of the collection queues: strategies (conditions, order, team and policy per queue,
champion/challenger), their simulation and application, the supervisors' board and
moves, and working the queue (next account, release, worklist).

Bodies are validated here with the queues service's own schemas for a quick answer;
the service validates again, enforces permission and institution scope (a strategy
or queue of another institution answers 404, like a missing one) and answers the data,
which these views only document. The service hands back timestamps and amounts as
Python values (kombu's JSON keeps their type): the API's one JSON provider
(``_views.AnswerJSON``) writes them as every other answer (ISO 8601, decimal text).
"""
from __future__ import annotations

from marshmallow import fields

from queues.contracts import (MoveAccounts, QueueOut, Reassign, StrategyOut, StrategyWrite,
                              WorklistQuery)
from recaudo_common.validation import Schema

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body

blp = Blueprint("queues", __name__, url_prefix="/api/v1",
                description="Filas de cobranza: estrategias, simulación y aplicación, tablero "
                            "del supervisor y trabajo de la fila (siguiente cuenta, lista)")
blp.before_request(auth.require_api_user)




# --- documentation of the answers (the service answers them already dumped) ---------------

class CatalogueField(Schema):
    name = fields.String()
    label = fields.String()
    kind = fields.String(metadata={"description": "int | money | text | bool | date_days"})
    choices = fields.List(fields.String())


class Catalogue(Schema):
    fields_ = fields.List(fields.Nested(CatalogueField), data_key="fields")
    operators = fields.Dict(keys=fields.String(), values=fields.String(),
                            metadata={"description": "código -> etiqueta"})
    sortable = fields.List(fields.String())


class StrategyWithQueues(StrategyOut):
    queues = fields.List(fields.Nested(QueueOut))


class SampleAccount(Schema):
    account_id = fields.Integer()
    rank = fields.Integer()
    agent_id = fields.Integer(allow_none=True)


class SimulatedQueue(Schema):
    queue_id = fields.Integer()
    accounts = fields.Integer()
    balance = fields.String()
    challenger = fields.Integer(metadata={"description": "cuentas del brazo retador"})
    sample = fields.List(fields.Nested(SampleAccount))


class Move(Schema):
    from_queue = fields.Integer(allow_none=True, metadata={"description": "null: sin fila hoy"})
    to_queue = fields.Integer()
    accounts = fields.Integer()


class Simulation(Schema):
    queues = fields.List(fields.Nested(SimulatedQueue))
    unplaced = fields.Integer(metadata={"description": "cuentas que ninguna fila toma"})
    moves = fields.List(fields.Nested(Move))
    leaving_queues = fields.Integer(metadata={"description": "cuentas hoy en fila que saldrían"})


class Rebuilt(Schema):
    strategy_id = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "id de fila -> cuentas"})
    unplaced = fields.Integer()
    collector_changes = fields.Integer()


class Resynced(Schema):
    institution_id = fields.Integer()
    accounts = fields.Integer()


class BoardRow(Schema):
    queue_id = fields.Integer()
    name = fields.String()
    position = fields.Integer()
    frozen = fields.Boolean()
    team_id = fields.Integer()
    policy = fields.String()
    accounts = fields.Integer()
    balance = fields.String()
    worked_today = fields.Integer()
    remaining = fields.Integer()


class Freeze(Schema):
    frozen = fields.Boolean(required=True)


class Frozen(Schema):
    queue_id = fields.Integer()
    frozen = fields.Boolean()


class Moved(Schema):
    moved = fields.Integer()


class Lease(Schema):
    account_id = fields.Integer()
    debtor_id = fields.Integer()
    queue_id = fields.Integer()
    queue = fields.String()
    rank = fields.Integer()
    lease_expires_at = fields.String(metadata={"description": "ISO 8601; la cuenta es suya "
                                                              "hasta entonces"})


class WorkItem(Schema):
    account_id = fields.Integer()
    debtor_id = fields.Integer()
    queue_id = fields.Integer(metadata={"description": "envíela como queue_id de las "
                                                       "gestiones de esta cuenta"})
    queue = fields.String()
    rank = fields.Integer()
    days_past_due = fields.Integer()
    balance = fields.String()
    overdue_amount = fields.String()
    callback_at = fields.String(allow_none=True)
    workable = fields.Boolean(metadata={"description": "se puede gestionar ahora (horario, "
                                                       "fila no congelada, sin aclaración)"})


class Worklist(Schema):
    items = fields.List(fields.Nested(WorkItem))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
    pages = fields.Integer()


# --- strategies ----------------------------------------------------------------------------

@blp.route("/queues/catalogue", methods=["GET"])
@blp.alt_response(200, schema=Catalogue)
def catalogue():
    """Campos, operadores y criterios de orden con que se arman las condiciones de una fila."""
    with rpc() as proxy:
        return proxy.queues.condition_catalogue()


@blp.route("/institutions/<int:institution_id>/strategies", methods=["GET"])
@blp.alt_response(200, schema=StrategyWithQueues(many=True))
def list_strategies(institution_id):
    """Estrategias de la institución (borrador, activa, archivadas) con sus filas."""
    with rpc() as proxy:
        return proxy.queues.list_strategies(institution_id)


@blp.route("/strategies", methods=["POST"])
@blp.arguments(StrategyWrite)
@blp.alt_response(201, schema=StrategyWithQueues)
def create_strategy(_):
    """Crea una estrategia en borrador: filas en orden, cada una con condiciones
    (``{"all"|"any": [{field, op, value} | grupo]}``), orden, equipo y política de
    asignación; opcionalmente una retadora con su porcentaje (champion/challenger)."""
    with rpc() as proxy:
        return proxy.queues.save_strategy(body()), 201


@blp.route("/strategies/<int:strategy_id>", methods=["GET"])
@blp.alt_response(200, schema=StrategyWithQueues)
def get_strategy(strategy_id):
    with rpc() as proxy:
        return proxy.queues.get_strategy(strategy_id)


@blp.route("/strategies/<int:strategy_id>", methods=["PUT"])
@blp.arguments(StrategyWrite)
@blp.alt_response(200, schema=StrategyWithQueues)
def update_strategy(_, strategy_id):
    """Reemplaza un borrador (una estrategia activa o archivada no se edita: 409)."""
    with rpc() as proxy:
        return proxy.queues.save_strategy(body(), strategy_id)


@blp.route("/strategies/<int:strategy_id>/simulate", methods=["POST"])
@blp.alt_response(200, schema=Simulation)
def simulate_strategy(strategy_id):
    """Qué haría aplicarla, sin cambiar nada: cuentas y saldo por fila, una muestra, y
    cuántas cuentas cambiarían de fila respecto de hoy."""
    with rpc() as proxy:
        return proxy.queues.simulate_strategy(strategy_id)


@blp.route("/strategies/<int:strategy_id>/apply", methods=["POST"])
@blp.alt_response(200, schema=Rebuilt)
def apply_strategy(strategy_id):
    """La vuelve la estrategia activa de su institución y reordena sus filas ahora (409 si
    otra aplicación de la misma institución está en curso)."""
    with rpc() as proxy:
        return proxy.queues.apply_strategy(strategy_id)


@blp.route("/institutions/<int:institution_id>/rebuild", methods=["POST"])
@blp.alt_response(200, schema=Rebuilt)
def rebuild_queues(institution_id):
    """Vuelve a colocar las cuentas de la institución con su estrategia activa."""
    with rpc() as proxy:
        return proxy.queues.rebuild_queues(institution_id)


@blp.route("/institutions/<int:institution_id>/resync", methods=["POST"])
@blp.alt_response(200, schema=Resynced)
def resync_facts(institution_id):
    """Recarga desde la cartera los datos con que se clasifican las cuentas de la
    institución (y su horario de contacto)."""
    with rpc() as proxy:
        return proxy.queues.resync_facts(institution_id)


# --- supervising ------------------------------------------------------------------------------

@blp.route("/strategies/<int:strategy_id>/board", methods=["GET"])
@blp.alt_response(200, schema=BoardRow(many=True))
def board(strategy_id):
    """Tablero: por fila, cuentas, saldo, trabajadas hoy, pendientes y si está congelada."""
    with rpc() as proxy:
        return proxy.queues.queue_board(strategy_id)


@blp.route("/queues/<int:queue_id>/freeze", methods=["POST"])
@blp.arguments(Freeze)
@blp.alt_response(200, schema=Frozen)
def freeze_queue(data, queue_id):
    """Congela (nadie recibe cuentas de ella) o descongela una fila."""
    with rpc() as proxy:
        return proxy.queues.freeze_queue(queue_id, data["frozen"])


@blp.route("/queues/move", methods=["POST"])
@blp.arguments(MoveAccounts)
@blp.alt_response(200, schema=Moved)
def move_accounts(_):
    """Mueve cuentas a una fila de su misma institución (al final de ella)."""
    with rpc() as proxy:
        return proxy.queues.move_accounts(body())


@blp.route("/queues/reassign", methods=["POST"])
@blp.arguments(Reassign)
@blp.alt_response(200, schema=Moved)
def reassign_agent(_):
    """Pasa todas las cuentas de un gestor a otro (``to_agent_id`` null: de vuelta a la fila)."""
    with rpc() as proxy:
        return proxy.queues.reassign_agent(body())


# --- working the queue ----------------------------------------------------------------------

@blp.route("/queues/next", methods=["POST"])
@blp.alt_response(200, schema=Lease, description="La cuenta a gestionar, apartada para usted")
@blp.alt_response(204, description="No hay cuentas por gestionar ahora")
def next_account():
    """Siguiente cuenta: aparta la cuenta de mayor prioridad que puede gestionar ahora (o
    responde la que ya tiene apartada, hasta que la libere o registre una gestión)."""
    with rpc() as proxy:
        lease = proxy.queues.next_account()
    if lease is None:
        return "", 204
    return lease


@blp.route("/queues/release/<int:account_id>", methods=["POST"])
@blp.alt_response(204, description="Cuenta liberada")
def release_account(account_id):
    """Devuelve a la fila la cuenta que tiene apartada (404 si no la tiene)."""
    with rpc() as proxy:
        proxy.queues.release_account(account_id)
    return "", 204


@blp.route("/worklist", methods=["GET"])
@blp.arguments(WorklistQuery, location="query")
@blp.alt_response(200, schema=Worklist)
def worklist(query):
    """Mi lista de trabajo: mis cuentas asignadas en orden de gestión, con fila, prioridad,
    días de atraso, saldo, hora de volver a llamar y si se puede gestionar ahora."""
    with rpc() as proxy:
        return proxy.queues.my_worklist({"page": query["page"],
                                                "per_page": query["per_page"]})
