"""Mailbox passwords encrypted at rest (``recaudo_common.sealing``, under this use's own
label): rotating the identity key means re-entering the mailbox passwords (the sync then
reports a wrong password)."""
from __future__ import annotations

from recaudo_common.sealing import seal, unseal

_LABEL = b"recaudo messaging mailbox passwords v1"


def encrypt(plain: str) -> str:
    return seal(_LABEL, plain)


def decrypt(token: str | None) -> str | None:
    """The password, or None when there is none or it no longer decrypts (key rotated)."""
    return unseal(_LABEL, token)
