"""FastAPI dependencies: who is calling, and may they.

* ``current_principal(request)``: the session cookie (console) or
  ``Authorization: Bearer <token>`` (machines); None when neither is valid. With
  ``insecure_no_auth`` everyone is ``Principal("anonymous", Role.ADMIN, "no-auth")``.
* ``console_user(request)``: for HTML pages; raises ``SignInRequired``, which the app
  turns into a 303 redirect to ``/login?next=<path>``.
* ``api_user(permission)``: for API routes; 401 typed JSON without a principal, 403
  without the permission. A cookie-authenticated call that changes something must also
  send the session's CSRF token in ``X-CSRF-Token``.
* ``csrf_token(request)`` and ``verify_csrf(request)``: the token every console form
  carries (hidden field ``csrf_token``) and its check (field or ``X-CSRF-Token`` header).
  The sign-in form, which has no session yet, has its own check
  (:mod:`surefoot.web.auth.signin_csrf`).

The clock is ``request.app.state.clock`` (``utc_now`` unless a test sets another).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from surefoot.config import WebSettings
from surefoot.domain.access import Permission, Principal, Role, WebSessionRecord
from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now
from surefoot.errors import (
    AuthenticationError,
    CsrfError,
    PermissionDeniedError,
    SignInRequiredError,
)
from surefoot.web.auth import sessions, tokens

NO_AUTH = Principal("anonymous", Role.ADMIN, "no-auth")
# Every response carries this header while authentication is off (the console shows a banner).
WARNING_HEADER = "X-Surefoot-Warning"
NO_AUTH_WARNING = "authentication is disabled"

# The name console pages know it by: ``console_user`` raises it, the app redirects.
SignInRequired = SignInRequiredError
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Declared so the OpenAPI document states how to authenticate (and schemathesis can check
# that every operation refuses a call without it); the check itself is below.
bearer_scheme = HTTPBearer(auto_error=False, description="An API token: Bearer sft_...")

__all__ = [
    "NO_AUTH",
    "SignInRequired",
    "api_user",
    "console_user",
    "csrf_token",
    "current_principal",
    "verify_csrf",
]


def surefoot_app(request: Request) -> App:
    app: App = request.app.state.surefoot
    return app


def web_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.web_settings
    return settings


def now_of(request: Request) -> datetime:
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", utc_now)
    return clock()


_UNSET = object()


def _session(request: Request) -> tuple[WebSessionRecord, Principal] | None:
    """The request's live session, looked up once per request."""
    cached: Any = getattr(request.state, "surefoot_session", _UNSET)
    if cached is not _UNSET:
        found: tuple[WebSessionRecord, Principal] | None = cached
        return found
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    found = None
    if cookie:
        found = sessions.resolve(
            surefoot_app(request).store,
            cookie,
            settings=web_settings(request),
            now=now_of(request),
        )
    request.state.surefoot_session = found
    return found


def current_principal(request: Request) -> Principal | None:
    """Who is calling: a bearer token first, else the session cookie; None if neither is
    valid (an invalid bearer token is not rescued by a cookie)."""
    if web_settings(request).insecure_no_auth:
        return NO_AUTH
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        return tokens.authenticate(surefoot_app(request).store, secret.strip(), now_of(request))
    found = _session(request)
    return found[1] if found else None


def console_user(request: Request) -> Principal:
    """The signed-in user of an HTML page; redirects to the sign-in page otherwise."""
    principal = current_principal(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(next_path=target)
    return principal


def csrf_token(request: Request) -> str:
    """This session's CSRF token (kept in the store, so every server knows it); with
    ``insecure_no_auth``, a token of this server process (one machine by definition).
    Without a session, "": no form is accepted then (the sign-in form carries its own
    token, :mod:`surefoot.web.auth.signin_csrf`)."""
    if web_settings(request).insecure_no_auth:
        token: str = request.app.state.process_csrf_token
        return token
    found = _session(request)
    return found[0].csrf_token if found is not None else ""


def _matches(sent: str | None, expected: str) -> bool:
    return (
        bool(sent) and bool(expected) and hmac.compare_digest(str(sent).encode(), expected.encode())
    )


async def verify_csrf(request: Request) -> None:
    """Refuse (403 ``csrf_failed``) a form or call whose ``csrf_token`` field or
    ``X-CSRF-Token`` header is not this session's token."""
    sent: Any = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get(CSRF_FIELD)
    expected = await run_in_threadpool(csrf_token, request)
    if not isinstance(sent, str) or not _matches(sent, expected):
        raise CsrfError("the form is missing this session's CSRF token; reload the page")


def api_user(permission: Permission) -> Callable[..., Principal]:
    """A dependency for an API route that needs ``permission``; returns the principal."""

    def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # noqa: B008
    ) -> Principal:
        principal = current_principal(request)
        if principal is None:
            raise AuthenticationError(
                "authentication required: send Authorization: Bearer <token>, or sign in"
            )
        if principal.via == "session" and request.method not in SAFE_METHODS:
            found = _session(request)
            if found is None or not _matches(request.headers.get(CSRF_HEADER), found[0].csrf_token):
                raise CsrfError(f"a signed-in browser call must send the {CSRF_HEADER} header")
        if not principal.can(permission):
            raise PermissionDeniedError(
                f"role {principal.role.value} does not have permission {permission.value}"
            )
        request.state.principal = principal
        return principal

    return dependency
