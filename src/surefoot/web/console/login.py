"""Sign in and sign out of the console."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from surefoot.errors import AuthenticationError
from surefoot.web.auth import oidc, sessions
from surefoot.web.auth.deps import current_principal, verify_csrf
from surefoot.web.console.pages import CHECK_CSRF, now, render, surefoot_app

router = APIRouter()


def local_path(target: str | None) -> str:
    """``target`` if it is a path on this server, else ``/``: no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(ch) < 0x20 for ch in target):
        return "/"
    return target


def _login_page(request: Request, next_path: str, error: str, status_code: int) -> Response:
    settings = request.app.state.web_settings
    return render(
        request,
        None,
        "login.html",
        status_code=status_code,
        title="Sign in",
        next_path=next_path,
        error=error,
        sso=oidc.enabled(settings),
    )


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
    # The sign-in form carries this process's CSRF token (there is no session yet), so
    # another site cannot sign a browser in to an account of its choosing.
    await verify_csrf(request)
    target = local_path(next_path)
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
        return _login_page(request, target, "Unknown user or wrong password.", 401)
    response = RedirectResponse(target, status_code=303)
    sessions.set_session_cookie(response, new.cookie_value, settings)
    return response


@router.post("/logout", dependencies=CHECK_CSRF)
def logout(request: Request) -> Response:
    cookie = request.cookies.get(sessions.SESSION_COOKIE)
    if cookie:
        sessions.sign_out(surefoot_app(request).store, cookie)
    response = RedirectResponse("/login", status_code=303)
    sessions.clear_session_cookie(response)
    return response
