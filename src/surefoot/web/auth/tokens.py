"""API tokens for machines: ``Authorization: Bearer <secret>``.

The secret (``sft_`` + 43 URL-safe characters) is shown once at creation; the store keeps
its SHA-256. A revoked or expired token is refused like an unknown one.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from surefoot.domain.access import ApiTokenRecord, Principal, Role
from surefoot.errors import ConfigError
from surefoot.store.base import Store

PREFIX = "sft_"
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per token


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    store: Store,
    name: str,
    role: Role,
    *,
    actor: str,
    now: datetime,
    expires_days: float | None = None,
) -> tuple[str, ApiTokenRecord]:
    """Create a token; returns ``(secret, record)``. The secret is not kept anywhere."""
    if not name.strip():
        raise ConfigError("a token needs a name (what uses it)")
    if expires_days is not None and not expires_days > 0:
        raise ConfigError(f"expires_days must be positive, got {expires_days}")
    secret = PREFIX + secrets.token_urlsafe(32)
    record = ApiTokenRecord(
        token_id=uuid.uuid4().hex[:16],
        token_hash=digest(secret),
        name=name,
        role=role,
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days is not None else None,
    )
    store.create_token(record, now=now)
    return secret, record


def authenticate(store: Store, secret: str, now: datetime) -> Principal | None:
    """The principal a bearer secret stands for, or None if it is unknown, revoked or
    expired."""
    if not secret.startswith(PREFIX):
        return None
    token = store.find_token(digest(secret))
    if token is None or not token.usable(now):
        return None
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > TOUCH_EVERY_S:
        store.touch_token(token.token_id, now)
    return Principal(f"token:{token.name}", token.role, "token")
