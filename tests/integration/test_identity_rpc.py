"""Identity travels in context data and each service verifies it itself."""
import pytest

from auth.models import Base
from recaudo_common.db import Database
from recaudo_common.errors import EXPECTED, NotAuthenticated, PermissionDenied
from recaudo_common.identity import Identity, sign
from recaudo_common.service import ServiceBase, rpc


class GuardedService(ServiceBase):
    name = "guarded"
    db = Database(Base, relay=False)

    @rpc(expected_exceptions=EXPECTED)
    def whoami(self):
        identity = self.caller.require("portfolio.read")
        return {"user": identity.username, "request_id": self.request_id}


GESTOR = Identity(user_id=1, username="gestor1", profile="Gestor",
                  permissions=frozenset({"portfolio.read"}), institutions=(1,))


@pytest.fixture
def guarded(container_factory, rabbit_config):
    container_factory(GuardedService, rabbit_config).start()


def test_signed_identity_and_request_id_reach_the_service(guarded, rpc_proxy):
    proxy = rpc_proxy({"identity": sign(GESTOR), "request_id": "req-0001-abcd"})
    assert proxy.guarded.whoami() == {"user": "gestor1", "request_id": "req-0001-abcd"}


@pytest.mark.parametrize("context", [
    {},                                                     # no identity at all
    {"identity": "eyJ1c2VyX2lkIjoxfQ.forged"},              # made up
    {"identity": sign(GESTOR, key="not-the-platform-key")},  # signed by someone else
    {"identity": sign(GESTOR, ttl=-5)},                     # expired
])
def test_missing_or_forged_identity_is_refused(guarded, rpc_proxy, context):
    with pytest.raises(NotAuthenticated):
        rpc_proxy(context).guarded.whoami()


def test_missing_permission_is_refused_with_its_name(guarded, rpc_proxy):
    clerk = Identity(user_id=2, username="cliente", profile="Cliente",
                     permissions=frozenset({"reports.view"}), institutions=(1,))
    with pytest.raises(PermissionDenied) as err:
        rpc_proxy({"identity": sign(clerk)}).guarded.whoami()
    assert err.value.fields == {"permission": ["portfolio.read"]}
