"""Outbound HTTP that operators can follow: ``sf.http_client()``.

An ``httpx.Client`` (or ``httpx.AsyncClient``) whose transport, for every request,
opens a client span under the current step attempt's span, sends the W3C
``traceparent`` of that span and the run's ``X-Correlation-ID``, and records the
call's duration by method and status class. Inside a step, the receiving system can
tie the call to the run; outside one, only the trace headers are sent.

Errors are not swallowed or classified here: they reach the step, whose failure
classification (``engine.facts``) reads the httpx exception and response.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from surefoot.engine.context import current_step_var
from surefoot.observability import metrics
from surefoot.observability.tracing import CORRELATION_HEADER, format_traceparent

_tracer = trace.get_tracer("surefoot.http")


@contextmanager
def _outbound(request: httpx.Request) -> Iterator[list[httpx.Response]]:
    """Span, headers and timing around one request; the caller appends the response."""
    step = current_step_var.get()
    started = time.perf_counter()
    attributes: dict[str, str | int] = {
        "http.request.method": request.method,
        "server.address": request.url.host,
        "url.path": request.url.path,  # no query string: it may carry credentials
    }
    if step is not None:
        attributes |= {"surefoot.run_id": step.run_id, "surefoot.step": step.step}
    with _tracer.start_as_current_span(
        f"HTTP {request.method}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        span_context = span.get_span_context()
        if span_context.is_valid:
            request.headers["traceparent"] = format_traceparent(span_context)
        if step is not None and step.correlation_id:
            request.headers.setdefault(CORRELATION_HEADER, step.correlation_id)
        received: list[httpx.Response] = []
        status = "error"
        try:
            yield received
            if received:
                code = received[0].status_code
                status = f"{code // 100}xx"
                span.set_attribute("http.response.status_code", code)
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {code}"))
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
            raise
        finally:
            metrics.OUTBOUND_REQUESTS.labels(request.method, status).observe(
                time.perf_counter() - started
            )


class TracingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with _outbound(request) as received:
            response = self.inner.handle_request(request)
            received.append(response)
            return response

    def close(self) -> None:
        self.inner.close()


class AsyncTracingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _outbound(request) as received:
            response = await self.inner.handle_async_request(request)
            received.append(response)
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def http_client(
    *, transport: httpx.BaseTransport | None = None, timeout: Any = 10.0, **options: Any
) -> httpx.Client:
    """An ``httpx.Client`` whose requests carry the run's trace and correlation id.
    ``options`` go to ``httpx.Client`` (``base_url``, ``headers``, ``auth``...); the
    default timeout is 10 s, never unbounded."""
    inner = transport if transport is not None else httpx.HTTPTransport()
    return httpx.Client(transport=TracingTransport(inner), timeout=timeout, **options)


def async_http_client(
    *, transport: httpx.AsyncBaseTransport | None = None, timeout: Any = 10.0, **options: Any
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` twin of :func:`http_client`."""
    inner = transport if transport is not None else httpx.AsyncHTTPTransport()
    return httpx.AsyncClient(transport=AsyncTracingTransport(inner), timeout=timeout, **options)
