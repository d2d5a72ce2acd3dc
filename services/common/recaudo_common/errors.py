"""Typed domain errors shared by every service and mapped to HTTP by the gateway.

Each class is registered with nameko's ``deserialize_to_instance`` so that a
caller gets the same typed exception back (with its ``fields``), not a bare
``RemoteError``. Services list ``EXPECTED`` in their entrypoints'
``expected_exceptions`` so these are not logged as crashes.
"""
from __future__ import annotations

from nameko.exceptions import deserialize_to_instance


class DomainError(Exception):
    """A request the service understood and refused. ``code`` is machine-readable."""

    code = "error"

    def __init__(self, message: str = "", fields: dict | None = None):
        super().__init__(message, fields or {})
        self.message = message or self.code
        self.fields = fields or {}

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


@deserialize_to_instance
class InvalidInput(DomainError):
    """The input failed validation; ``fields`` maps field name -> list of problems."""

    code = "invalid_input"


@deserialize_to_instance
class NotAuthenticated(DomainError):
    """No identity, or one whose signature or expiry does not verify."""

    code = "not_authenticated"


@deserialize_to_instance
class PermissionDenied(DomainError):
    """The caller is known but lacks the permission for this operation."""

    code = "permission_denied"


@deserialize_to_instance
class NotFound(DomainError):
    """Missing, or out of the caller's scope: both answer the same (no existence leaks)."""

    code = "not_found"


@deserialize_to_instance
class Conflict(DomainError):
    """The request clashes with the current state (a duplicate, a concurrent change)."""

    code = "conflict"


@deserialize_to_instance
class Throttled(DomainError):
    """Too many attempts; try again in ``retry_after`` seconds (the gateway answers 429
    with that ``Retry-After``). It travels in ``args`` so it crosses RPC too."""

    code = "throttled"

    def __init__(self, message: str = "", fields: dict | None = None,
                 retry_after: int | None = None):
        super().__init__(message, fields)
        # nameko's serialisation sends numbers as text ("None" too): 0 stands for unknown
        seconds = int(float(retry_after or 0))
        self.retry_after = max(1, seconds) if seconds > 0 else None
        self.args = (message, fields or {}, self.retry_after or 0)


@deserialize_to_instance
class Gone(DomainError):
    """It existed and is over for good (an expired or revoked share link)."""

    code = "gone"


@deserialize_to_instance
class Unavailable(DomainError):
    """A dependency is down (``fields["unavailable"]`` names it: database, broker, object
    store, or a service); nothing was changed, and the same request may be tried again."""

    code = "unavailable"
    SPANISH = {"database": "la base de datos", "broker": "la mensajería (RabbitMQ)",
               "object store": "el almacén de documentos", "service": "un servicio"}

    @classmethod
    def of(cls, what: str) -> "Unavailable":
        return cls(f"No disponible por ahora: {cls.SPANISH.get(what, what)} no responde; "
                   "intente de nuevo en unos segundos", {"unavailable": what})


EXPECTED = (InvalidInput, NotAuthenticated, PermissionDenied, NotFound, Conflict, Throttled, Gone,
            Unavailable)
