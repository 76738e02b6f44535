"""Server-side console sessions.

The cookie (``surefoot_session``) holds a random id; the store keeps its SHA-256, the
user, a CSRF token and three times: created, last seen, and the absolute limit. A session
ends when it is idle for ``session_idle_s``, when ``session_absolute_s`` has passed since
sign-in, at sign-out, and when its user is disabled or changed. Every sign-in makes a new
id (rotation); the id of the request's old cookie, if any, is deleted in the same
transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.responses import Response

from surefoot.config import WebSettings
from surefoot.domain.access import Principal, UserRecord, WebSessionRecord
from surefoot.errors import AuthenticationError
from surefoot.store.base import Store
from surefoot.web.auth.passwords import verify_password

SESSION_COOKIE = "surefoot_session"
TOUCH_EVERY_S = 30.0  # last_seen_at is written at most this often (and at idle/10)


@dataclass(frozen=True)
class NewSession:
    """What a sign-in hands back: the cookie value to set (once; the store keeps only its
    hash), the session's CSRF token, and who signed in."""

    cookie_value: str
    csrf_token: str
    principal: Principal


def session_hash(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def sign_in(
    store: Store,
    username: str,
    password: str,
    *,
    settings: WebSettings,
    now: datetime,
    previous: str | None = None,
) -> NewSession:
    """Check a local user's password and open a session.

    Raises ``AuthenticationError`` with the same message for an unknown user, a wrong
    password and a disabled user. Pass the request's current cookie value as ``previous``
    (``request.cookies.get(SESSION_COOKIE)``) so the old session is deleted.
    """
    user = store.get_user(username)
    matches = verify_password(user.password_hash if user else None, password)
    if user is None or not matches or user.disabled:
        raise AuthenticationError("unknown user or wrong password")
    return start_session(store, user, settings=settings, now=now, previous=previous)


def start_session(
    store: Store,
    user: UserRecord,
    *,
    settings: WebSettings,
    now: datetime,
    previous: str | None = None,
) -> NewSession:
    """Open a session for a user already authenticated (password or OIDC)."""
    if user.disabled:
        raise AuthenticationError("unknown user or wrong password")
    cookie_value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    store.create_session(
        WebSessionRecord(
            session_hash=session_hash(cookie_value),
            username=user.username,
            role=user.role,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=settings.session_absolute_s),
        ),
        replaces=session_hash(previous) if previous else None,
    )
    return NewSession(cookie_value, csrf, Principal(user.username, user.role, "session"))


def sign_out(store: Store, cookie_value: str) -> None:
    store.delete_session(session_hash(cookie_value))


def resolve(
    store: Store, cookie_value: str, *, settings: WebSettings, now: datetime
) -> tuple[WebSessionRecord, Principal] | None:
    """The live session a cookie names and its principal (the user's current role), or
    None. An expired session is deleted; a live one is touched (idle timeout)."""
    digest = session_hash(cookie_value)
    session = store.get_session(digest)
    if session is None:
        return None
    if not session.live(now, settings.session_idle_s):
        store.delete_session(digest)
        return None
    user = store.get_user(session.username)
    if user is None or user.disabled:
        store.delete_session(digest)
        return None
    since = (now - session.last_seen_at).total_seconds()
    if since > min(TOUCH_EVERY_S, settings.session_idle_s / 10):
        store.touch_session(digest, now)
    return session, Principal(user.username, user.role, "session")


def set_session_cookie(response: Response, cookie_value: str, settings: WebSettings) -> None:
    """HttpOnly, SameSite=Lax, Secure when ``settings.secure_cookies``; no Max-Age (the
    server decides when the session ends)."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie_value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
