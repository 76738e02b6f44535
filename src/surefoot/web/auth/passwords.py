"""Password hashes: argon2id through argon2-cffi, never anything weaker."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from surefoot.errors import ConfigError

MIN_LENGTH = 10

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so an unknown name costs the same
    time as a wrong password and cannot be told apart by it. Made on first use: hashing
    costs ~0.1 s by design, which every CLI command would otherwise pay at import."""
    return _hasher.hash("surefoot-no-such-user")


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ConfigError(f"a password needs at least {MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; ``None`` (no such user, or OIDC only) never matches
    but takes as long as a real check."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
