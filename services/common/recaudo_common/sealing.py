"""Secrets a service must read back (mailbox passwords, webhook signing secrets) encrypted
at rest.

The key is derived (HKDF-SHA256) from the platform's identity key, the one secret every
service already holds, under a label per use, so no new setting has to be deployed and
each use's key is distinct from the others and from the HMAC use of the identity key.
Rotating the identity key means entering those secrets again.
"""
from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import settings


@lru_cache(maxsize=16)
def _fernet(secret: str, label: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(label: bytes, plain: str) -> str:
    return _fernet(settings().identity_key, label).encrypt(plain.encode()).decode()


def unseal(label: bytes, token: str | None) -> str | None:
    """The secret, or None when there is none or it no longer decrypts (key rotated)."""
    if not token:
        return None
    try:
        return _fernet(settings().identity_key, label).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
