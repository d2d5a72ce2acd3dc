"""Payment references: how a payment arriving by SPEI, at a bank window or an OXXO-style
store finds its account.

An account's reference is 16 digits: 14 taken from an HMAC-SHA256 of (institution,
account) under a key derived from the platform's identity key, then two check digits
(ISO 7064 MOD 97-10, as IBANs use). Knowing one's own reference says nothing about another
account's (no sequence to walk: a guess is right about once in 10^14), and a mistyped digit
or two swapped digits fail the check before any lookup. The reference is kept in
``payment_references`` (unique per institution) when first asked for, so payments files
and webhooks find the account by an index; a collision (vanishingly rare) takes the next
derivation. The same reference goes as the SPEI transfer's concept (under the
institution's CLABE) and as the OXXO/bank-window reference (with its convenio).
"""
from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from recaudo_common.config import settings

from .contracts import is_valid_clabe  # noqa: F401 (the reference and the CLABE, one place)
from .models import Account, PaymentReference

_LABEL = b"recaudo portfolio payment references v1"
BODY_DIGITS = 14
LENGTH = BODY_DIGITS + 2


@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(secret.encode())


def mod97_check(body: str) -> str:
    """The two ISO 7064 MOD 97-10 check digits of a string of digits."""
    return f"{98 - (int(body) * 100) % 97:02d}"


def is_valid(reference: str) -> bool:
    """Shape and check digits only (no lookup): a typo never reaches the database."""
    return (isinstance(reference, str) and len(reference) == LENGTH and reference.isdigit()
            and mod97_check(reference[:BODY_DIGITS]) == reference[BODY_DIGITS:])


def derive(institution_id: int, account_id: int, attempt: int = 0) -> str:
    mac = hmac.new(_key(settings().identity_key),
                   f"{institution_id}:{account_id}:{attempt}".encode(), hashlib.sha256).digest()
    body = f"{int.from_bytes(mac, 'big') % 10 ** BODY_DIGITS:0{BODY_DIGITS}d}"
    return body + mod97_check(body)


def reference_for(session, account: Account) -> str:
    """The account's reference, made and kept the first time it is asked for."""
    found = session.execute(select(PaymentReference.reference).where(
        PaymentReference.account_id == account.id)).scalar_one_or_none()
    if found:
        return found
    for attempt in range(8):
        reference = derive(account.institution_id, account.id, attempt)
        stored = session.execute(insert(PaymentReference).values(
            account_id=account.id, institution_id=account.institution_id, reference=reference)
            .on_conflict_do_nothing().returning(PaymentReference.reference)).scalar_one_or_none()
        if stored:
            return stored
        again = session.execute(select(PaymentReference.reference).where(
            PaymentReference.account_id == account.id)).scalar_one_or_none()
        if again:   # another transaction made it first
            return again
    raise RuntimeError("no free payment reference")  # 8 collisions in 10^14: never


def account_for(session, institution_id: int, reference: str) -> int | None:
    """The account a reference names in an institution, or None (checked digits first)."""
    reference = (reference or "").strip()
    if not is_valid(reference):
        return None
    return session.execute(select(PaymentReference.account_id).where(
        PaymentReference.institution_id == institution_id,
        PaymentReference.reference == reference)).scalar_one_or_none()
