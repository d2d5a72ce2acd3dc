"""What the unit tests share besides fixtures (those are in conftest.py)."""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

#: the users the stand-in sessions belong to (their permissions are given per test)
GESTOR1 = {"id": 3, "username": "gestor1", "display_name": "Gestor Uno", "language": "es"}
SUPERVISOR = {"id": 2, "username": "supervisor", "display_name": "Supervisora",
              "language": "es"}


class FakeRpcPool:
    """The gateway's RPC pool (``gateway.rpc.RpcPool``) answering from stand-in services:
    ``proxy(context_data)`` yields an object whose ``<service>`` attributes are them."""

    def __init__(self, services: dict):
        self.services = services

    @contextmanager
    def proxy(self, context_data: dict | None = None):
        yield SimpleNamespace(**self.services)


#: the queues service's catalogue of fields, operators and sort criteria, as the strategy
#: editor and the campaign form receive it
CATALOGUE = {
    "fields": [{"name": "days_past_due", "label": "Días de atraso", "kind": "int", "choices": []},
               {"name": "balance", "label": "Saldo", "kind": "money", "choices": []},
               {"name": "stage", "label": "Etapa", "kind": "text",
                "choices": ["current", "delinquent", "litigation"]},
               {"name": "open_promise", "label": "Promesa vigente", "kind": "bool",
                "choices": []}],
    "operators": {"eq": "igual a", "gt": "mayor que", "between": "entre", "in": "en la lista",
                  "is_set": "tiene valor", "lt": "menor que"},
    "sortable": ["days_past_due", "balance", "account_id"],
}
