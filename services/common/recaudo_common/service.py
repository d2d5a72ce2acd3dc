"""What every Recaudo service has in common: identity, request context, health."""
from __future__ import annotations

from functools import partial

from nameko import rpc as _nameko_rpc

from .errors import EXPECTED
from .identity import Caller
from .logs import RequestContext


#: ``@rpc`` for Recaudo services: domain errors are expected answers, not crashes.
rpc = partial(_nameko_rpc.rpc, expected_exceptions=EXPECTED)


class ServiceBase:
    """Subclasses set ``name`` and ``db = Database(Base)`` and add their entrypoints."""

    name: str
    request_id = RequestContext()
    caller = Caller()

    @rpc
    def health(self) -> dict:
        """Answer for the gateway's /healthz: this service and its own database."""
        return {"service": self.name, **self.db.health(), **self.extra_health()}

    def extra_health(self) -> dict:
        """Override to report further dependencies (object store, mail servers)."""
        return {}
