"""System endpoints of the API: the platform's health, for monitors and partners."""
from __future__ import annotations

from marshmallow import fields

from recaudo_common.config import SERVICES
from recaudo_common.validation import Schema

from ..rpc import rpc
from ..health import check_services
from ._views import Blueprint

blp = Blueprint("system", __name__, url_prefix="/api/v1/system",
                description="Estado de la plataforma")


class ServiceHealth(Schema):
    status = fields.String(required=True, metadata={"description": "ok | failing"})
    service = fields.String()
    database = fields.String()
    latency_ms = fields.Float()
    object_store = fields.String(metadata={"description": "documentos: ok | failing"})
    error = fields.String(metadata={"description": "el tipo de la falla"})


class HealthReport(Schema):
    status = fields.String(required=True)
    elapsed_ms = fields.Float()
    services = fields.Dict(keys=fields.String(), values=fields.Nested(ServiceHealth))
    failing = fields.List(fields.String())


@blp.route("/health")
@blp.doc(security=[])    # public: no token
@blp.alt_response(200, schema=HealthReport)
@blp.alt_response(503, schema=HealthReport, description="Uno o más servicios fallan")
def health():
    """Estado de cada servicio y de su base de datos."""
    return check_services()


class Ping(Schema):
    service = fields.String(required=True)
    database = fields.String()
    latency_ms = fields.Float()
    object_store = fields.String(metadata={"description": "documentos: ok | failing"})


@blp.route("/ping/<any({services}):service>".format(services=",".join(SERVICES)))
@blp.doc(security=[])    # public: no token
@blp.alt_response(200, schema=Ping)
def ping(service):
    """Una sola llamada al servicio indicado (RPC y su base de datos): para monitores."""
    with rpc() as proxy:
        return getattr(proxy, service).health()
