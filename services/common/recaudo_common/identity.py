"""The caller's identity, signed, carried in nameko context data to every service.

The auth service mints the identity when it authenticates a user or an API key;
the gateway attaches it to each RPC; services verify the signature and expiry with
the shared key and then check permission and institution scope against their own
rows. A forged, tampered, expired or missing identity is refused: services never
trust whoever happens to be on the broker.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass, field

from nameko.extensions import DependencyProvider

from .config import settings
from .errors import NotAuthenticated, NotFound, PermissionDenied

IDENTITY_KEY = "identity"
#: the permission of the platform's own system identity, standing for every permission
ALL_PERMISSIONS = "*"
#: the one permission of a debtor's portal session (no profile holds it)
DEBTOR_PERMISSION = "portal.self"


@dataclass(frozen=True)
class Identity:
    user_id: int
    username: str
    profile: str
    permissions: frozenset = field(default_factory=frozenset)
    #: institution ids the caller may act for; ``None`` means every institution.
    institutions: tuple | None = ()
    #: agent user ids this caller supervises (their own id is implied).
    team: tuple = ()
    language: str = "es"
    expires_at: float = 0.0
    #: a debtor's portal session (``debtor``): the one debtor it may reach, of one
    #: institution; such a principal has no institutions and no staff permission
    debtor_id: int | None = None
    debtor_institution_id: int | None = None

    @classmethod
    def system(cls, service: str) -> "Identity":
        """A service acting on its own (a timer, an event handler calling another service).
        Only holders of the identity key can sign it, i.e. the platform's own services."""
        return cls(user_id=0, username=f"system:{service}", profile="Sistema",
                   permissions=frozenset({ALL_PERMISSIONS}), institutions=None)

    # --- checks services call --------------------------------------------
    def has(self, permission: str) -> bool:
        return permission in self.permissions or ALL_PERMISSIONS in self.permissions

    def require(self, permission: str) -> "Identity":
        if not self.has(permission):
            raise PermissionDenied(f"Falta el permiso {permission}", {"permission": [permission]})
        return self

    def may_access_institution(self, institution_id) -> bool:
        return self.institutions is None or institution_id in self.institutions

    def require_institution(self, institution_id) -> None:
        """Out of scope answers like missing: callers cannot probe what exists."""
        if not self.may_access_institution(institution_id):
            raise NotFound("No encontrado")

    @classmethod
    def debtor(cls, institution_id: int, debtor_id: int, language: str = "es") -> "Identity":
        """The principal of a debtor's portal session (auth's portal links)."""
        return cls(user_id=0, username=f"deudor:{debtor_id}", profile="Deudor",
                   permissions=frozenset({DEBTOR_PERMISSION}), institutions=(),
                   language=language, debtor_id=debtor_id, debtor_institution_id=institution_id)

    def require_debtor(self) -> "Identity":
        """Only a debtor's portal session; its own debtor is then checked against the
        service's rows (another debtor's answers like missing)."""
        if self.debtor_id is None or DEBTOR_PERMISSION not in self.permissions:
            raise PermissionDenied("Sólo para la sesión del portal del deudor",
                                   {"permission": [DEBTOR_PERMISSION]})
        return self

    def require_own(self, institution_id, debtor_id) -> None:
        """A debtor principal reaches its own debtor's rows only: others answer like missing."""
        if (institution_id, debtor_id) != (self.debtor_institution_id, self.debtor_id):
            raise NotFound("No encontrado")

    @property
    def all_institutions(self) -> bool:
        return self.institutions is None

    # --- wire format -------------------------------------------------------
    def to_claims(self) -> dict:
        claims = asdict(self)
        claims["permissions"] = sorted(self.permissions)
        claims["institutions"] = None if self.institutions is None else list(self.institutions)
        claims["team"] = list(self.team)
        return claims

    @classmethod
    def from_claims(cls, claims: dict) -> "Identity":
        institutions = claims.get("institutions")
        return cls(
            user_id=claims["user_id"],
            username=claims["username"],
            profile=claims["profile"],
            permissions=frozenset(claims.get("permissions", ())),
            institutions=None if institutions is None else tuple(institutions),
            team=tuple(claims.get("team", ())),
            language=claims.get("language", "es"),
            expires_at=claims.get("expires_at", 0.0),
            debtor_id=claims.get("debtor_id"),
            debtor_institution_id=claims.get("debtor_institution_id"),
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(identity: Identity, key: str | None = None, ttl: float | None = None) -> str:
    """Serialise ``identity`` as ``payload.signature`` with an expiry ``ttl`` seconds away."""
    cfg = settings()
    key = key or cfg.identity_key
    ttl = cfg.identity_ttl_seconds if ttl is None else ttl
    claims = identity.to_claims()
    claims["expires_at"] = time.time() + ttl
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key.encode(), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify(token, key: str | None = None) -> Identity:
    """Return the identity in ``token`` or raise ``NotAuthenticated``."""
    if not token or not isinstance(token, str) or token.count(".") != 1:
        raise NotAuthenticated("Se requiere autenticación")
    key = key or settings().identity_key
    payload, signature = token.split(".")
    expected = hmac.new(key.encode(), payload.encode(), hashlib.sha256).digest()
    try:
        valid = hmac.compare_digest(expected, _unb64(signature))
        claims = json.loads(_unb64(payload)) if valid else None
        identity = Identity.from_claims(claims) if claims else None
    except (ValueError, KeyError, TypeError):
        identity = None
    if identity is None:
        raise NotAuthenticated("Identidad inválida")
    if identity.expires_at < time.time():
        raise NotAuthenticated("La identidad expiró")
    return identity


class Caller(DependencyProvider):
    """Gives an entrypoint the verified identity of whoever called it.

    Accessing ``self.caller.identity`` raises ``NotAuthenticated`` when the call
    carries no valid identity, so an entrypoint that forgets nothing else at
    least cannot run anonymously once it asks who is calling.
    """

    def get_dependency(self, worker_ctx):
        return _CallerAccess(worker_ctx.data.get(IDENTITY_KEY))


class _CallerAccess:
    def __init__(self, token):
        self._token = token
        self._identity: Identity | None = None

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            self._identity = verify(self._token)
        return self._identity

    def require(self, permission: str) -> Identity:
        return self.identity.require(permission)
