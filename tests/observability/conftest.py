"""Fixtures for observability tests: captured JSON log lines, captured spans, a store of
each kind, and a local HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from surefoot.config import Settings
from surefoot.observability import redaction
from surefoot.observability.logging import configure_logging, unconfigure_logging
from tests import postgres_support

postgres_server = postgres_support.postgres_server


class _GatedExporter(InMemorySpanExporter):
    """Keeps spans only while a test asked for them (the provider outlives the test)."""

    active = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return super().export(spans) if self.active else SpanExportResult.SUCCESS


_EXPORTER = _GatedExporter()


def _install_provider() -> None:
    """The global tracer provider can be set once per process: set it here, for all tests."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))


_install_provider()


class LogCapture:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log line of the test, as configured for servers and workers (JSON, DEBUG)."""
    capture = LogCapture()
    handler = configure_logging(
        Settings(log_level="DEBUG", log_format="json"),
        stream=capture.stream,
        replace_handlers=False,
    )
    yield capture
    unconfigure_logging(handler)
    redaction.configure()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    _EXPORTER.active = True
    yield _EXPORTER
    _EXPORTER.active = False
    _EXPORTER.clear()


def spans_of_run(exporter: InMemorySpanExporter, run_id: str) -> list[ReadableSpan]:
    """The spans that name the run, and every span below one of them."""
    finished = list(exporter.get_finished_spans())
    ids = {
        s.context.span_id for s in finished if (s.attributes or {}).get("surefoot.run_id") == run_id
    }
    changed = True
    while changed:
        changed = False
        for s in finished:
            if s.parent is not None and s.parent.span_id in ids and s.context.span_id not in ids:
                ids.add(s.context.span_id)
                changed = True
    return [s for s in finished if s.context.span_id in ids]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'surefoot.db'}"
        return
    server: postgres_support.PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answered in order; 200 once used up
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _answer  # noqa: N815 - the handler's method names

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self) -> list[Any]:
        return [json.loads(body) for _headers, body in self.requests if body]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()
