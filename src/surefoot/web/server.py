"""One process for the embedded default: the API and console under uvicorn, the app's
workers beside them, and the alert evaluator; ``surefoot serve`` runs :func:`serve_app`.

Workers run in threads beside uvicorn and are drained when the server stops (SIGINT /
SIGTERM). The server refuses to start with authentication on and nobody able to sign in;
with ``--insecure-no-auth`` it warns loudly and every response carries a warning header.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from surefoot.config import WebSettings
from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now
from surefoot.engine.worker import Worker
from surefoot.errors import NoCredentialsError
from surefoot.observability.logging import configure_logging
from surefoot.observability.tracing import configure_tracing
from surefoot.ops.alert_rules import load_rules
from surefoot.ops.alerts import AlertEvaluator
from surefoot.web.app import create_app
from surefoot.web.auth import oidc

log = logging.getLogger("surefoot.serve")


def check_can_sign_in(app: App, settings: WebSettings) -> None:
    """Refuse to serve a store nobody can sign in to (unless auth is off)."""
    if settings.insecure_no_auth or oidc.enabled(settings):
        return
    if app.store.has_credentials(utc_now()):
        return
    raise NoCredentialsError(
        "no enabled user and no usable API token: nobody could sign in. Create one first, "
        "e.g. `surefoot users add APP NAME --role admin` or `surefoot tokens create APP NAME "
        "--role admin`, or (on this machine only) pass --insecure-no-auth"
    )


def serve_app(app: App, settings: WebSettings, *, concurrency: int | None = None) -> None:
    """Serve until SIGINT / SIGTERM; the workers start with the server and are drained
    (and the store closed) during its shutdown, before the process exits."""
    check_can_sign_in(app, settings)
    rules = load_rules(app.settings.alert_rules_path) if app.settings.alert_rules_path else None
    configure_logging(app.settings)
    configure_tracing(app.settings)
    api = create_app(app, settings)
    serving = api.router.lifespan_context

    @asynccontextmanager
    async def with_workers(instance: FastAPI) -> AsyncIterator[None]:
        alerts = AlertEvaluator(app, rules).start() if rules is not None else None
        worker = Worker(app, concurrency=concurrency).start()
        try:
            async with serving(instance):
                yield
        finally:
            log.info("draining workers")
            await run_in_threadpool(worker.stop, app.settings.drain_timeout_s)
            if alerts is not None:
                alerts.stop()
            app.close()

    api.router.lifespan_context = with_workers
    # log_config=None: uvicorn's own lines go through the structured logging set up above.
    uvicorn.Server(
        uvicorn.Config(
            api, host=settings.host, port=settings.port, log_level="info", log_config=None
        )
    ).run()
