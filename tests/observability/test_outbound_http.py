"""Outbound calls made with sf.http_client() carry the run's trace and correlation id."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import surefoot as sf
from surefoot.observability import tracing
from surefoot.observability.metrics import sample
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.observability.conftest import Receiver, spans_of_run


def test_an_outbound_call_sends_the_trace_and_correlation_of_its_step(
    make_app: MakeApp, start_worker: StartWorker, receiver: Receiver, spans: InMemorySpanExporter
) -> None:
    app = make_app()

    @app.step
    def fetch(url: str) -> int:
        with sf.http_client() as client:
            return client.get(url).status_code

    @app.workflow
    def calls(ctx: sf.WorkflowContext, url: str) -> int:
        return fetch(url)

    before = sample(
        "surefoot_outbound_request_duration_seconds_count", {"method": "GET", "status": "2xx"}
    )
    handle = app.start(calls, f"{receiver.url}/vendor?page=1", correlation_id="corr-out-1")
    start_worker(app)
    assert handle.result(timeout=10) == 200

    [(headers, _body)] = receiver.requests
    assert headers["x-correlation-id"] == "corr-out-1"
    sent = tracing.parse_traceparent(headers["traceparent"])
    stored = tracing.parse_traceparent(handle.record().trace_context)
    assert sent is not None
    assert stored is not None
    assert sent.trace_id == stored.trace_id

    run_spans = spans_of_run(spans, handle.run_id)
    [http_span] = [s for s in run_spans if s.name == "HTTP GET"]
    [step_span] = [s for s in run_spans if s.name.startswith("surefoot.step")]
    assert http_span.context.span_id == sent.span_id  # the server sees the client span
    assert http_span.parent is not None
    assert http_span.parent.span_id == step_span.context.span_id
    assert http_span.attributes is not None
    assert http_span.attributes["http.response.status_code"] == 200
    assert "page=1" not in str(http_span.attributes)  # no query strings in spans
    after = sample(
        "surefoot_outbound_request_duration_seconds_count", {"method": "GET", "status": "2xx"}
    )
    assert after == before + 1


def test_outside_a_step_only_the_trace_is_sent(receiver: Receiver) -> None:
    with sf.http_client() as client:
        assert client.get(receiver.url).status_code == 200
    [(headers, _body)] = receiver.requests
    assert "x-correlation-id" not in headers
    assert tracing.parse_traceparent(headers["traceparent"]) is not None


async def _fetch_async(url: str) -> int:
    async with sf.async_http_client() as client:
        return (await client.get(url)).status_code


def test_the_async_client_sends_the_same_headers(
    make_app: MakeApp, start_worker: StartWorker, receiver: Receiver
) -> None:
    app = make_app()

    @app.step
    async def fetch(url: str) -> int:
        return await _fetch_async(url)

    @app.workflow
    async def calls(ctx: sf.WorkflowContext, url: str) -> int:
        return await fetch(url)

    handle = app.start(calls, receiver.url, correlation_id="corr-async")
    start_worker(app)
    assert handle.result(timeout=10) == 200
    [(headers, _body)] = receiver.requests
    assert headers["x-correlation-id"] == "corr-async"
