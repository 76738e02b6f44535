"""Sign in and sign out of the console.

The sign-in form is protected by a double-submit cookie
(:mod:`surefoot.web.auth.signin_csrf`), so its GET and its POST may reach different
servers behind a load balancer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from surefoot.errors import AuthenticationError, CsrfError
from surefoot.web.auth import oidc, sessions, signin_csrf
from surefoot.web.auth.deps import current_principal
from surefoot.web.console.pages import CHECK_CSRF, now, render, surefoot_app

router = APIRouter()


def local_path(target: str | None) -> str:
    """``target`` if it is a path on this server, else ``/``: no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(ch) < 0x20 for ch in target):
        return "/"
    return target


def _login_page(
    request: Request, next_path: str, error: str, status_code: int, token: str | None = None
) -> Response:
    """The sign-in form, with its CSRF token in the form and in the cookie."""
    settings = request.app.state.web_settings
    token = token or signin_csrf.form_token(request)
    response = render(
        request,
        None,
        "login.html",
        status_code=status_code,
        title="Sign in",
        next_path=next_path,
        error=error,
        sso=oidc.enabled(settings),
        csrf=token,
    )
    signin_csrf.set_cookie(response, token, settings)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    next_path = local_path(request.query_params.get("next"))
    if current_principal(request) is not None:
        return RedirectResponse(next_path, status_code=303)
    return _login_page(request, next_path, "", 200)


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next_path: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    # The form's token must equal its cookie, so another site cannot sign a browser in
    # to an account of its choosing. Refused: the form again, and nothing else happens.
    target = local_path(next_path)
    try:
        token = await signin_csrf.verify(request)
    except CsrfError:
        return await run_in_threadpool(
            _login_page, request, target, "The sign-in form expired. Sign in again.", 403
        )
    settings = request.app.state.web_settings
    store = surefoot_app(request).store
    try:
        new = await run_in_threadpool(
            lambda: sessions.sign_in(
                store,
                username.strip(),
                password,
                settings=settings,
                now=now(),
                previous=request.cookies.get(sessions.SESSION_COOKIE),
            )
        )
    except AuthenticationError:
        return await run_in_threadpool(
            _login_page, request, target, "Unknown user or wrong password.", 401, token
        )
    response = RedirectResponse(target, status_code=303)
    sessions.set_session_cookie(response, new.cookie_value, settings)
    signin_csrf.clear_cookie(response, settings)
    return response


@router.post("/logout", dependencies=CHECK_CSRF)
def logout(request: Request) -> Response:
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if cookie:
        sessions.sign_out(surefoot_app(request).store, cookie)
    response = RedirectResponse("/login", status_code=303)
    sessions.clear_session_cookie(response)
    return response
