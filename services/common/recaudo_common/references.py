"""Ids of another service's objects, verified with their owner before they are stored.

A service never reads another's tables, so a foreign key cannot guard an
``institution_id`` kept by activities, messaging, queues or reports: each asks the owner
by RPC, with the caller's own identity (the proxy carries it), and an id the owner does
not know, or the caller may not see, answers 404 naming the field, like a missing
object, and nothing is stored.
"""
from __future__ import annotations

from .errors import NotFound


def require_institution(portfolio, identity, institution_id: int,
                        field: str = "institution_id") -> None:
    """``institution_id`` exists and is within the caller's scope, else ``NotFound``."""
    identity.require_institution(institution_id)
    try:
        portfolio.get_institution(institution_id)
    except NotFound:
        raise NotFound("Institución no encontrada", {field: ["No existe"]}) from None


def require_institutions(portfolio, institution_ids, field: str = "institutions") -> None:
    """Every id in ``institution_ids`` names an institution the caller may see (one call
    for the whole list), else ``NotFound`` naming the field and the unknown ids."""
    if not institution_ids:
        return
    unknown = sorted(set(institution_ids) - {i["id"] for i in portfolio.list_institutions()})
    if unknown:
        raise NotFound("Institución no encontrada", {field: [
            "No existe: " + ", ".join(str(i) for i in unknown)]})
