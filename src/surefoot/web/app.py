"""The web server: REST API (``/api/v1``), OIDC sign-in (``/auth/oidc``), the console.

``create_app(app, settings)`` builds it, with ``/healthz``, ``/readyz`` and ``/metrics``
(:mod:`surefoot.web.health`). It sets ``api.state.surefoot`` (the
:class:`surefoot.App`), ``api.state.web_settings``, ``api.state.clock`` (tests replace it)
and ``api.state.process_csrf_token``; includes :data:`surefoot.web.console.router` and
mounts :data:`surefoot.web.console.STATIC_DIR` at ``/static``. Its lifespan opens the
store before the first request, so a bad store fails at start, not at first use.

Several servers on one store may stand behind a load balancer without affinity: sessions
and their CSRF tokens are in the store; the sign-in form's CSRF token and an OIDC sign-in
in progress are in the browser (:mod:`surefoot.web.auth.signin_csrf`,
:mod:`surefoot.web.auth.oidc`). Only with ``insecure_no_auth`` (one machine by
definition) do forms carry ``process_csrf_token``, a token of this process.

With ``settings.insecure_no_auth`` every caller is an admin: the start logs a loud warning
and every response carries ``X-Surefoot-Warning: authentication is disabled``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import surefoot
from surefoot.config import WebSettings
from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now
from surefoot.web import console, errors, health
from surefoot.web.api import router as api_router
from surefoot.web.auth import oidc
from surefoot.web.auth.deps import NO_AUTH_WARNING, WARNING_HEADER

log = logging.getLogger("surefoot.web")


class NoAuthWarning:
    """Adds ``X-Surefoot-Warning`` to every HTTP response."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def send_with_warning(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((WARNING_HEADER.lower().encode(), NO_AUTH_WARNING.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.inner(scope, receive, send_with_warning)


def create_app(app: App, settings: WebSettings) -> FastAPI:
    """The API and console over ``app``'s store, as ``settings`` says."""

    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(lambda: app.store)
        if settings.insecure_no_auth:
            log.warning(
                "AUTHENTICATION IS DISABLED (--insecure-no-auth): anyone who can reach this "
                "server acts as an admin. Never expose it beyond this machine."
            )
        yield

    api = FastAPI(
        title="Surefoot",
        version=getattr(surefoot, "__version__", "0"),
        summary="Durable business automation: runs, dead-letter, review, queues, audit.",
        lifespan=lifespan,
    )
    api.state.surefoot = app
    api.state.web_settings = settings
    api.state.clock = utc_now
    api.state.process_csrf_token = secrets.token_urlsafe(32)
    errors.install(api)
    console.install(api)
    api.include_router(health.router)
    api.include_router(api_router)
    api.include_router(oidc.router)
    api.include_router(console.router)
    api.mount("/static", StaticFiles(directory=console.STATIC_DIR, check_dir=False), name="static")
    if settings.insecure_no_auth:
        api.add_middleware(NoAuthWarning)
    return api
