"""Roles and what each may do: the one policy the API, the console and the CLI enforce.

Roles are cumulative by intent but listed explicitly, so the table reads as the policy:

| permission      | viewer | reviewer | operator | admin |
|-----------------|--------|----------|----------|-------|
| read            |   x    |    x     |    x     |   x   |
| decide_review   |        |    x     |          |   x   |
| start_run       |        |          |    x     |   x   |
| send_event      |        |          |    x     |   x   |
| cancel_run      |        |          |    x     |   x   |
| fork_run        |        |          |    x     |   x   |
| redrive         |        |          |    x     |   x   |
| discard         |        |          |    x     |   x   |
| manage_queues   |        |          |    x     |   x   |
| manage_users    |        |          |          |   x   |

An operator recovers work but does not approve it; a reviewer approves but does not
redrive. Only an admin does both, and only an admin manages users and tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    DECIDE_REVIEW = "decide_review"
    START_RUN = "start_run"
    SEND_EVENT = "send_event"
    CANCEL_RUN = "cancel_run"
    FORK_RUN = "fork_run"
    REDRIVE = "redrive"
    DISCARD = "discard"
    MANAGE_QUEUES = "manage_queues"
    MANAGE_USERS = "manage_users"


_P = Permission
_OPERATE = frozenset(
    {
        _P.START_RUN,
        _P.SEND_EVENT,
        _P.CANCEL_RUN,
        _P.FORK_RUN,
        _P.REDRIVE,
        _P.DISCARD,
        _P.MANAGE_QUEUES,
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({_P.READ}),
    Role.REVIEWER: frozenset({_P.READ, _P.DECIDE_REVIEW}),
    Role.OPERATOR: frozenset({_P.READ}) | _OPERATE,
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user, an API token, or nobody when auth is off."""

    name: str
    role: Role
    via: str  # "session", "token" or "no-auth"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


# -- what the store keeps about who may sign in (secrets only as hashes) ------------------


@dataclass(frozen=True)
class UserRecord:
    """A local user. ``password_hash`` is argon2id, or None for users who sign in by OIDC."""

    username: str
    role: Role
    created_at: datetime
    updated_at: datetime
    password_hash: str | None = None
    disabled: bool = False

    def audit_view(self) -> dict[str, object]:
        """What the audit log keeps of a user (both stores write this): never the hash."""
        return {"role": self.role.value, "disabled": self.disabled}


@dataclass(frozen=True)
class ApiTokenRecord:
    """A machine credential. The secret is shown once; only its SHA-256 is kept."""

    token_id: str
    token_hash: str
    name: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def audit_view(self) -> dict[str, object]:
        """What the audit log keeps of a new token: never the secret or its hash."""
        return {
            "name": self.name,
            "role": self.role.value,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class WebSessionRecord:
    """A server-side console session; the cookie holds a random id, the store its SHA-256."""

    session_hash: str
    username: str
    role: Role
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # the absolute limit

    def live(self, now: datetime, idle_s: float) -> bool:
        """Neither past its absolute limit nor idle for longer than ``idle_s``."""
        return now < self.expires_at and (now - self.last_seen_at).total_seconds() < idle_s
