"""What every Recaudo service has in common: identity, request context, health."""
from __future__ import annotations

from functools import partial

from .errors import EXPECTED
from .identity import Caller
from .logs import RequestContext
from .resilience import EventHandler, Heartbeat, Rpc

#: ``@rpc`` for Recaudo services: domain errors are expected answers, not crashes, and a
#: broker, database or object-store outage neither kills the service (``resilience.py``)
rpc = partial(Rpc.decorator, expected_exceptions=EXPECTED)
#: ``@event_handler(source, event_type)``, riding out outages the same way
event_handler = EventHandler.decorator


class ServiceBase:
    """Subclasses set ``name`` and ``db = Database(Base)`` and add their entrypoints."""

    name: str
    request_id = RequestContext()
    caller = Caller()
    heartbeat = Heartbeat()

    @rpc
    def health(self) -> dict:
        """Answer for the gateway's /healthz: this service and its own database."""
        return {"service": self.name, **self.db.health(), **self.extra_health()}

    def extra_health(self) -> dict:
        """Override to report further dependencies (object store, mail servers)."""
        return {}
