"""Structured logs: structlog renders every record, Surefoot's and the standard library's.

Surefoot's own modules log through the standard library (``logging.getLogger``), with
their fields in ``extra``, so an embedding application that configures nothing sees
nothing unusual. Servers and workers call :func:`configure_logging` at start: from then
on every line is one JSON object (or, in a terminal, a readable line) carrying the
context bound for the run in progress (``run_id``, ``workflow``, ``correlation_id``,
and inside a step ``step``, ``position``, ``attempt``), then redacted. The lines of each
run started and succeeded (logger ``surefoot.runs``, INFO) are written only with
``log_each_run`` or at DEBUG.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from surefoot.config import Settings
from surefoot.errors import ConfigError
from surefoot.observability import redaction

_HANDLER_MARK = "_surefoot_handler"
# One line per run: started and succeeded at INFO, failed and cancelled at WARNING.
RUNS_LOGGER = "surefoot.runs"


def redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: drop secrets by field name and by pattern, at any depth."""
    return redaction.active().mapping(event_dict)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(
    settings: Settings,
    *,
    json: bool | None = None,
    stream: IO[str] | None = None,
    replace_handlers: bool = True,
) -> logging.Handler:
    """Route all logging through structlog: JSON lines (``json=True``, or when the stream
    is not a terminal), or readable lines in a terminal. The root logger's handlers are
    replaced (with ``replace_handlers=False`` only the one a previous call installed);
    returns the new handler."""
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        raise ConfigError(f"log_level={settings.log_level!r} is not a logging level")
    redaction.configure(
        [n for n in settings.redact_names.split(",") if n.strip()],
        [settings.redact_pattern] if settings.redact_pattern else [],
    )
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = settings.log_format == "json" or (
            settings.log_format == "auto" and not (hasattr(out, "isatty") and out.isatty())
        )
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if replace_handlers or getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The lines of each run started and succeeded (INFO) only when asked for, or at DEBUG:
    # at thousands of runs a second they cost a worker a sixth of its throughput.
    each_run = settings.log_each_run or level <= logging.DEBUG
    logging.getLogger(RUNS_LOGGER).setLevel(
        logging.NOTSET if each_run else max(level, logging.WARNING)
    )
    structlog.configure(
        processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return handler


def unconfigure_logging(handler: logging.Handler) -> None:
    """Remove a handler :func:`configure_logging` installed (tests, embedded servers), and
    the level it gave the logger of each run."""
    logging.getLogger().removeHandler(handler)
    logging.getLogger(RUNS_LOGGER).setLevel(logging.NOTSET)
    handler.close()


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind fields to every log line of this context (thread or task) while inside."""
    tokens = structlog.contextvars.bind_contextvars(**fields)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def bind(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """Bind fields; returns tokens for :func:`reset` (the cheap form for hot paths)."""
    return structlog.contextvars.bind_contextvars(**fields)


def reset(tokens: Mapping[str, Any]) -> None:
    structlog.contextvars.reset_contextvars(**tokens)
