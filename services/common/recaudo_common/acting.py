"""RPC calls made under an identity other than the caller's: the platform's own (a timer
acting for the system) or a user's, obtained from the auth service, for work done later
on their behalf (a scheduled report runs with its owner's current permissions).

``self.acting.system.<service>.<method>()`` signs a fresh system identity;
``self.acting.as_(token).<service>.<method>()`` carries a signed identity given;
``self.acting.caller`` the caller's own (what ``RpcProxy`` does, as an object whose
attributes are services, for code that picks the service by name). The
called service checks that identity exactly as it checks any caller's.
"""
from __future__ import annotations

from nameko.containers import WorkerContext
from nameko.rpc import RpcProxy, ServiceProxy

from .identity import IDENTITY_KEY, Identity, sign


class _Services:
    def __init__(self, provider, worker_ctx, token: str):
        self._provider, self._worker_ctx, self._token = provider, worker_ctx, token

    def __getattr__(self, service_name):
        data = {k: v for k, v in self._worker_ctx.data.items() if k != IDENTITY_KEY}
        data[IDENTITY_KEY] = self._token
        ctx = WorkerContext(self._worker_ctx.container, self._worker_ctx.service,
                            self._worker_ctx.entrypoint, data=data)
        return ServiceProxy(ctx, service_name, self._provider.rpc_reply_listener)


class _Acting:
    def __init__(self, provider, worker_ctx):
        self._provider, self._worker_ctx = provider, worker_ctx

    @property
    def system(self) -> _Services:
        name = self._provider.container.service_name
        return _Services(self._provider, self._worker_ctx, sign(Identity.system(name)))

    def as_(self, token: str) -> _Services:
        return _Services(self._provider, self._worker_ctx, token)

    @property
    def caller(self) -> _Services:
        """Proxies carrying the current caller's own identity (as ``RpcProxy`` does)."""
        return _Services(self._provider, self._worker_ctx,
                         self._worker_ctx.data.get(IDENTITY_KEY))

    @property
    def caller_token(self) -> str | None:
        return self._worker_ctx.data.get(IDENTITY_KEY)


class ActingRpc(RpcProxy):
    """A dependency giving ``system`` and ``as_(token)`` service proxies."""

    def __init__(self):
        super().__init__("acting")

    def get_dependency(self, worker_ctx):
        return _Acting(self, worker_ctx)
