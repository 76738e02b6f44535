"""The sign-in form's CSRF token: a double-submit cookie, so that any server checks it.

Nobody is signed in yet, so there is no session to keep a token in, and a token of one
server process would fail whenever a load balancer sends the form's POST to another.
Instead ``GET /login`` sets a random token in a cookie (``surefoot_signin``: HttpOnly,
SameSite=Strict, path ``/login``, 30 minutes, Secure with ``secure_cookies``) and puts
the same value in the form; ``POST /login`` is accepted only when the form's
``csrf_token`` field (or ``X-CSRF-Token`` header) equals the cookie, compared in constant
time. Another site can make a browser post the form, but can neither read the cookie nor
make the browser send it, so it cannot sign the browser in to an account of its choosing.
No server keeps anything.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from fastapi import Request
from starlette.responses import Response

from surefoot.config import WebSettings
from surefoot.errors import CsrfError
from surefoot.web.auth.deps import CSRF_FIELD, CSRF_HEADER

SIGNIN_COOKIE = "surefoot_signin"
SIGNIN_FORM_S = 1800  # a sign-in form older than this is refused; the form is shown again
_PATH = "/login"
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


def form_token(request: Request) -> str:
    """The token for a sign-in form: the browser's own while its cookie holds one (two
    sign-in tabs then both work), else a new random one."""
    current = request.cookies.get(SIGNIN_COOKIE, "")
    if _WELL_FORMED.fullmatch(current):
        return current
    return secrets.token_urlsafe(32)


def set_cookie(response: Response, token: str, settings: WebSettings) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=SIGNIN_FORM_S,
        path=_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )


def clear_cookie(response: Response, settings: WebSettings) -> None:
    response.delete_cookie(
        SIGNIN_COOKIE,
        path=_PATH,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )


async def verify(request: Request) -> str:
    """The sign-in form's token, when the field (or header) and the cookie hold the same
    one; ``CsrfError`` otherwise."""
    sent: Any = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            sent = (await request.form()).get(CSRF_FIELD)
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    if (
        not isinstance(sent, str)
        or not _WELL_FORMED.fullmatch(cookie)
        or not hmac.compare_digest(sent.encode(), cookie.encode())
    ):
        raise CsrfError("the sign-in form expired or was not sent from this site; sign in again")
    return cookie
