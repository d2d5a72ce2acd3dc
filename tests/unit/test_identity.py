import time

import pytest

from recaudo_common.errors import NotAuthenticated, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign, verify

KEY = "unit-test-key"


def make(**kw):
    base = dict(user_id=7, username="gestor1", profile="Gestor",
                permissions=frozenset({"activities.log", "portfolio.read"}),
                institutions=(1,), team=(), language="es")
    base.update(kw)
    return Identity(**base)


def test_round_trip_keeps_every_claim():
    identity = make(team=(8, 9))
    back = verify(sign(identity, KEY, ttl=60), KEY)
    assert (back.user_id, back.username, back.profile) == (7, "gestor1", "Gestor")
    assert back.permissions == identity.permissions
    assert back.institutions == (1,) and back.team == (8, 9)
    assert back.expires_at > time.time()


def test_all_institutions_survives_the_wire():
    back = verify(sign(make(institutions=None), KEY, ttl=60), KEY)
    assert back.all_institutions and back.may_access_institution(12345)


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c", 42])
def test_malformed_tokens_are_refused(token):
    with pytest.raises(NotAuthenticated):
        verify(token, KEY)


def test_tampered_claims_are_refused():
    payload, signature = sign(make(), KEY, ttl=60).split(".")
    forged = sign(make(profile="Administrador", institutions=None), "attacker-key", ttl=60)
    with pytest.raises(NotAuthenticated):
        verify(f"{forged.split('.')[0]}.{signature}", KEY)
    with pytest.raises(NotAuthenticated):
        verify(forged, KEY)


def test_expired_identity_is_refused():
    with pytest.raises(NotAuthenticated, match="expir"):
        verify(sign(make(), KEY, ttl=-1), KEY)


def test_permission_and_scope_checks():
    identity = make()
    assert identity.require("portfolio.read") is identity
    with pytest.raises(PermissionDenied) as err:
        identity.require("users.manage")
    assert err.value.fields == {"permission": ["users.manage"]}
    identity.require_institution(1)
    with pytest.raises(NotFound):  # out of scope looks exactly like missing
        identity.require_institution(2)
