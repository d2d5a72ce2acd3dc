"""Mailbox passwords encrypted at rest.

The key is derived (HKDF-SHA256) from the platform's identity key, the one secret every
service already holds, so no new setting has to be deployed; the derivation's own label
keeps it distinct from the HMAC use of that key. Rotating the identity key therefore
means re-entering the mailbox passwords (the sync then reports a wrong password).
"""
from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from recaudo_common.config import settings

_LABEL = b"recaudo messaging mailbox passwords v1"


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plain: str) -> str:
    return _fernet(settings().identity_key).encrypt(plain.encode()).decode()


def decrypt(token: str | None) -> str | None:
    """The password, or None when there is none or it no longer decrypts (key rotated)."""
    if not token:
        return None
    try:
        return _fernet(settings().identity_key).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
