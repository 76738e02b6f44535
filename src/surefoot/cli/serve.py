"""``surefoot serve APP``: the API, the console and workers in one process
(:mod:`surefoot.web.server`)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from surefoot.cli.loading import load_app
from surefoot.config import web_from_environment


def serve(
    app: Annotated[str, typer.Argument(help="The app, as module:attribute.")],
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="No sign-in: everyone is an admin. Only on a machine nobody else reaches.",
        ),
    ] = False,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (overrides the app's).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Runs executed at once.")] = None,
) -> None:
    """Serve the REST API (/api/v1, /docs, /openapi.json) and the console, with workers."""
    logging.getLogger("surefoot").setLevel(logging.INFO)
    loaded = load_app(app, store=store, create=True)
    settings = web_from_environment(
        host=host, port=port, insecure_no_auth=True if insecure_no_auth else None
    )
    # Imported here, not at the top: the web stack costs every other command (a worker
    # restarting after a crash, a quick `runs list`) half a second of start-up.
    from surefoot.web.server import serve_app  # noqa: PLC0415

    serve_app(loaded, settings, concurrency=concurrency)
