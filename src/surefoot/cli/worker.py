"""``surefoot worker APP``: claim runs, execute them, drain on SIGTERM.

Kept apart from the operator commands: :func:`surefoot.cli.main.main` runs it without
importing them, so a worker restarting after a crash is back sooner.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from surefoot.cli.loading import load_app
from surefoot.engine.worker import Worker
from surefoot.observability.logging import configure_logging
from surefoot.observability.metrics import serve_worker_metrics
from surefoot.observability.tracing import configure_tracing


def worker(
    app: Annotated[str, typer.Argument(help="The app, as module:attribute.")],
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="Queues to serve.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Runs executed at once.")] = None,
    until_idle: Annotated[bool, typer.Option(help="Exit when no run is ready.")] = False,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (overrides the app's).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT (0 picks a free port)."),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="Log lines as json, console, or auto (JSON unless a TTY).")
    ] = None,
    log_each_run: Annotated[
        bool | None,
        typer.Option(
            "--log-each-run/--no-log-each-run",
            help="A line for each run that succeeds (failed runs always have one); default: "
            "SUREFOOT_LOG_EACH_RUN, else off (a summary line a minute).",
        ),
    ] = None,
) -> None:
    """Run a worker: claim runs, execute them, drain on SIGTERM."""
    loaded = load_app(app, store=store, create=True)
    loaded.settings = loaded.settings.with_overrides(
        log_format=log_format, log_each_run=log_each_run
    )
    configure_logging(loaded.settings)
    configure_tracing(loaded.settings)
    port = metrics_port if metrics_port is not None else loaded.settings.metrics_port or None
    if port is not None:
        served = serve_worker_metrics(loaded.store, port)
        logging.getLogger("surefoot.worker").info(
            "metrics at http://%s:%d/metrics", served.host, served.port
        )
    Worker(loaded, queues=queue, concurrency=concurrency).run(until_idle=until_idle)


# ``surefoot worker ...`` on its own: the same command, without the others.
worker_cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
worker_cli.command()(worker)
