"""What the unit tests share: the gateway with stand-in services behind its one RPC layer,
and a signed-in user.

The stand-ins replace the gateway's pool of cluster proxies (``app.extensions
["recaudo.rpc"]``, what ``gateway.rpc.rpc()`` borrows from), so every module of the
gateway reaches them the way it reaches the real services. A module says which services
stand in by overriding the ``services`` fixture."""
from __future__ import annotations

import pytest

from .helpers import GESTOR1, FakeRpcPool


@pytest.fixture
def services() -> dict:
    """The stand-in services behind the RPC layer, by name (a module overrides this)."""
    return {}


@pytest.fixture
def signed_in(monkeypatch, services):
    """fn(permissions, user=GESTOR1) -> app: every request comes from ``user`` holding
    ``permissions`` (a session, not a token), and every RPC reaches ``services``."""
    from flask import g

    from gateway import auth
    from gateway.app import create_app

    def make(permissions: list[str], user: dict = GESTOR1):
        def someone():
            g.user = {**user, "permissions": permissions}
            g.identity_token, g.csrf_token, g.auth_kind = "x", "csrf", "session"

        monkeypatch.setattr(auth, "resolve_caller", someone)
        app = create_app(testing=True)
        app.extensions["recaudo.rpc"] = FakeRpcPool(services)
        return app

    return make
