"""Local users: create them with an argon2 hash, change role, disable, enable."""

from __future__ import annotations

import re
from datetime import datetime

from surefoot.domain.access import Role, UserRecord
from surefoot.errors import ConfigError
from surefoot.store.base import Store
from surefoot.web.auth.passwords import hash_password

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
_NAME = re.compile(USERNAME_PATTERN)


def check_username(username: str) -> str:
    if not _NAME.match(username):
        raise ConfigError(
            f"user names are 1-128 letters, digits and . _ @ + - (starting with a letter or "
            f"digit), got {username!r}"
        )
    return username


def add_user(
    store: Store,
    username: str,
    password: str | None,
    role: Role,
    *,
    actor: str,
    now: datetime,
) -> UserRecord:
    """A new user; ``password`` None makes a user who can only sign in by OIDC."""
    password_hash = hash_password(password) if password is not None else None
    return store.create_user(check_username(username), password_hash, role, actor=actor, now=now)


def set_password(
    store: Store, username: str, password: str, *, actor: str, now: datetime
) -> UserRecord:
    return store.update_user(username, password_hash=hash_password(password), actor=actor, now=now)
