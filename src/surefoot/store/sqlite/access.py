"""Who may use the API and the console: users, API tokens, console sessions.

Secrets never reach this table set: passwords arrive as argon2 hashes, tokens and session
ids as SHA-256 digests. Every change to a user or a token appends an audit entry in the
same transaction (never a secret or a hash in it); sessions are not audited.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime

from surefoot.domain.access import ApiTokenRecord, Role, UserRecord, WebSessionRecord
from surefoot.domain.records import AuditRecord
from surefoot.errors import TokenNotFoundError, UserExistsError, UserNotFoundError
from surefoot.store.sqlite.base import SQLiteBase
from surefoot.store.sqlite.values import dt, dt_required, ts


def _user(row: sqlite3.Row) -> UserRecord:
    return UserRecord(
        username=row["username"],
        role=Role(row["role"]),
        created_at=dt_required(row["created_at"]),
        updated_at=dt_required(row["updated_at"]),
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
    )


def _token(row: sqlite3.Row) -> ApiTokenRecord:
    return ApiTokenRecord(
        token_id=row["token_id"],
        token_hash=row["token_hash"],
        name=row["name"],
        role=Role(row["role"]),
        created_by=row["created_by"],
        created_at=dt_required(row["created_at"]),
        expires_at=dt(row["expires_at"]),
        last_used_at=dt(row["last_used_at"]),
        revoked_at=dt(row["revoked_at"]),
    )


def _session(row: sqlite3.Row) -> WebSessionRecord:
    return WebSessionRecord(
        session_hash=row["session_hash"],
        username=row["username"],
        role=Role(row["role"]),
        csrf_token=row["csrf_token"],
        created_at=dt_required(row["created_at"]),
        last_seen_at=dt_required(row["last_seen_at"]),
        expires_at=dt_required(row["expires_at"]),
    )


class AccessMixin(SQLiteBase):
    # -- users ---------------------------------------------------------------------------
    def create_user(
        self, username: str, password_hash: str | None, role: Role, *, actor: str, now: datetime
    ) -> UserRecord:
        user = UserRecord(username, role, now, now, password_hash, False)

        def txn(cur: sqlite3.Cursor) -> UserRecord:
            if cur.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserExistsError(f"user {username!r} already exists")
            cur.execute(
                "INSERT INTO users (username, password_hash, role, disabled, created_at,"
                " updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                (username, password_hash, role.value, ts(now), ts(now)),
            )
            self._audit_txn(
                cur,
                AuditRecord(actor, "user.created", "user", username, None, user.audit_view()),
                now,
            )
            return user

        return self._write(txn)

    def get_user(self, username: str) -> UserRecord | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM users WHERE username = ?", (username,)
            ).fetchone()
        )
        return _user(row) if row else None

    def list_users(self) -> list[UserRecord]:
        return self._read(
            lambda cur: [_user(r) for r in cur.execute("SELECT * FROM users ORDER BY username")]
        )

    def update_user(
        self,
        username: str,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
        actor: str,
        now: datetime,
    ) -> UserRecord:
        """Change a user's role, disabled flag or password; a disabled user's sessions
        end at once, and so do all of a user's sessions when the role or password changes."""

        def txn(cur: sqlite3.Cursor) -> UserRecord:
            row = cur.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise UserNotFoundError(f"no user {username!r}")
            before = _user(row)
            after = UserRecord(
                username,
                role if role is not None else before.role,
                before.created_at,
                now,
                password_hash if password_hash is not None else before.password_hash,
                disabled if disabled is not None else before.disabled,
            )
            cur.execute(
                "UPDATE users SET role = ?, disabled = ?, password_hash = ?, updated_at = ?"
                " WHERE username = ?",
                (after.role.value, int(after.disabled), after.password_hash, ts(now), username),
            )
            cur.execute("DELETE FROM web_sessions WHERE username = ?", (username,))
            action = "user.password_changed" if password_hash is not None else "user.updated"
            self._audit_txn(
                cur,
                AuditRecord(
                    actor, action, "user", username, before.audit_view(), after.audit_view()
                ),
                now,
            )
            return after

        return self._write(txn)

    # -- API tokens ------------------------------------------------------------------------
    def create_token(self, token: ApiTokenRecord, *, now: datetime) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "INSERT INTO api_tokens (token_id, token_hash, name, role, created_by,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token.token_id,
                    token.token_hash,
                    token.name,
                    token.role.value,
                    token.created_by,
                    ts(token.created_at),
                    ts(token.expires_at),
                ),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    token.created_by,
                    "token.created",
                    "token",
                    token.token_id,
                    None,
                    token.audit_view(),
                ),
                now,
            )

        self._write(txn)

    def find_token(self, token_hash: str) -> ApiTokenRecord | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        )
        return _token(row) if row else None

    def list_tokens(self) -> list[ApiTokenRecord]:
        return self._read(
            lambda cur: [
                _token(r) for r in cur.execute("SELECT * FROM api_tokens ORDER BY created_at")
            ]
        )

    def revoke_token(self, token_id: str, *, actor: str, now: datetime) -> ApiTokenRecord:
        def txn(cur: sqlite3.Cursor) -> ApiTokenRecord:
            row = cur.execute("SELECT * FROM api_tokens WHERE token_id = ?", (token_id,)).fetchone()
            if row is None:
                raise TokenNotFoundError(f"no API token {token_id!r}")
            token = _token(row)
            if token.revoked_at is None:
                cur.execute(
                    "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ?", (ts(now), token_id)
                )
                self._audit_txn(
                    cur,
                    AuditRecord(
                        actor,
                        "token.revoked",
                        "token",
                        token_id,
                        {"revoked": False},
                        {"revoked": True},
                    ),
                    now,
                )
            return replace(token, revoked_at=token.revoked_at or now)

        return self._write(txn)

    def touch_token(self, token_id: str, now: datetime) -> None:
        self._write(
            lambda cur: cur.execute(
                "UPDATE api_tokens SET last_used_at = ? WHERE token_id = ?", (ts(now), token_id)
            )
        )

    def has_credentials(self, now: datetime) -> bool:
        """Whether anyone can sign in without OIDC: an enabled user with a password, or a
        usable API token."""

        def read(cur: sqlite3.Cursor) -> bool:
            users = "SELECT 1 FROM users WHERE disabled = 0 AND password_hash IS NOT NULL LIMIT 1"
            if cur.execute(users).fetchone():
                return True
            return (
                cur.execute(
                    "SELECT 1 FROM api_tokens WHERE revoked_at IS NULL"
                    " AND (expires_at IS NULL OR expires_at > ?) LIMIT 1",
                    (ts(now),),
                ).fetchone()
                is not None
            )

        return self._read(read)

    # -- console sessions ----------------------------------------------------------------------
    def create_session(self, session: WebSessionRecord, *, replaces: str | None = None) -> None:
        """Store a new session; ``replaces`` (a session hash) is deleted in the same
        transaction, so a sign-in always rotates the id."""

        def txn(cur: sqlite3.Cursor) -> None:
            if replaces is not None:
                cur.execute("DELETE FROM web_sessions WHERE session_hash = ?", (replaces,))
            cur.execute(
                "INSERT INTO web_sessions (session_hash, username, role, csrf_token, created_at,"
                " last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session.session_hash,
                    session.username,
                    session.role.value,
                    session.csrf_token,
                    ts(session.created_at),
                    ts(session.last_seen_at),
                    ts(session.expires_at),
                ),
            )
            cur.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (ts(session.created_at),))

        self._write(txn)

    def get_session(self, session_hash: str) -> WebSessionRecord | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM web_sessions WHERE session_hash = ?", (session_hash,)
            ).fetchone()
        )
        return _session(row) if row else None

    def touch_session(self, session_hash: str, now: datetime) -> None:
        self._write(
            lambda cur: cur.execute(
                "UPDATE web_sessions SET last_seen_at = ? WHERE session_hash = ?",
                (ts(now), session_hash),
            )
        )

    def delete_session(self, session_hash: str) -> None:
        self._write(
            lambda cur: cur.execute(
                "DELETE FROM web_sessions WHERE session_hash = ?", (session_hash,)
            )
        )
