"""Passwords, secrets and the rules around them, free of nameko.

Passwords are hashed with Argon2id. Session ids, API tokens and API keys are
random 256-bit secrets: they are stored as SHA-256 digests (a slow hash buys
nothing for secrets that cannot be guessed) and compared by digest lookup.
"""
from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from eventlet import patcher, tpool
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 256

_hasher = PasswordHasher()  # Argon2id, argon2-cffi's recommended parameters
#: verified against when the username is unknown, so both cases take the same time
_DUMMY_HASH = _hasher.hash("recaudo-dummy-password-for-timing")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("auth").joinpath("common_passwords.txt").read_text("utf-8")
    lines = (line.strip().lower() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def password_problems(password: str, username: str = "") -> list[str]:
    """Why ``password`` is not acceptable (empty list when it is)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Debe tener al menos {MIN_LENGTH} caracteres")
    if len(password) > MAX_LENGTH:
        problems.append(f"Debe tener como máximo {MAX_LENGTH} caracteres")
    if username and password.strip().lower() == username.strip().lower():
        problems.append("No puede ser igual al nombre de usuario")
    if password.strip().lower() in common_passwords():
        problems.append("Es una contraseña demasiado común")
    return problems


def _off_hub(fn, *args):
    """Argon2 is deliberately slow CPU work: under eventlet run it in a real thread so
    the service's other workers keep going (argon2-cffi releases the GIL)."""
    if patcher.is_monkey_patched("thread"):
        return tpool.execute(fn, *args)
    return fn(*args)


def hash_password(password: str) -> str:
    return _off_hub(_hasher.hash, password)


def check_password(stored_hash: str | None, password: str) -> bool:
    """Constant-shape check: an unknown user (``None``) costs one Argon2 verify too."""
    try:
        return _off_hub(_hasher.verify, stored_hash or _DUMMY_HASH, password) \
            and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
