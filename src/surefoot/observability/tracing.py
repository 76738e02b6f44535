"""Traces: one trace per run, whatever happens to the processes that carry it.

``App.start`` opens a short ``surefoot.start`` span (a child of the ingress request's span
when there is one) and stores its W3C ``traceparent`` with the run. Every execution of
the run, on any worker, after any crash, redrive or durable wait, opens its
``surefoot.run`` span as a child of that stored context, and each step attempt and
outbound call a span below it: the spans of one run share one trace id.

Spans go to the global OpenTelemetry tracer provider. Nothing is exported unless a
provider is installed: by the application, or by :func:`configure_tracing` when
``Settings.otlp_endpoint`` is set (that needs the ``otlp`` extra).
"""

from __future__ import annotations

import importlib
import re
import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    NoOpTracer,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from surefoot.config import Settings
from surefoot.errors import ConfigError
from surefoot.observability import redaction

_tracer = trace.get_tracer("surefoot")
_api_tracer = NoOpTracer()  # what _tracer delegates to until a tracer provider is installed
_propagator = TraceContextTextMapPropagator()
CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION = re.compile(r"^[A-Za-z0-9._:/@+-]{1,128}$")  # what an inbound id may look like


# -- trace contexts as text ------------------------------------------------------------
def format_traceparent(span_context: SpanContext) -> str:
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags):02x}"
    )


def parse_traceparent(text: str | None) -> SpanContext | None:
    """A W3C ``traceparent`` as a remote span context; None when absent or malformed."""
    if not text:
        return None
    parts = text.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def _parent(trace_context: str | None) -> otel_context.Context | None:
    remote = parse_traceparent(trace_context)
    return trace.set_span_in_context(NonRecordingSpan(remote)) if remote else None


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span (to send downstream), if any."""
    span_context = trace.get_current_span().get_span_context()
    return format_traceparent(span_context) if span_context.is_valid else None


# -- ingress ---------------------------------------------------------------------------------
def correlation_id_from_headers(headers: Mapping[str, str]) -> str:
    """The correlation id of an inbound request: its ``X-Correlation-ID`` (when it looks
    like an id: 1-128 of ``A-Za-z0-9._:/@+-``), else the trace id of its ``traceparent``,
    else a new one."""
    lowered = {k.lower(): v for k, v in headers.items()}
    given = lowered.get(CORRELATION_HEADER.lower(), "").strip()
    if given and _CORRELATION.match(given):
        return given
    remote = parse_traceparent(lowered.get("traceparent"))
    return f"{remote.trace_id:032x}" if remote else uuid.uuid4().hex


@contextmanager
def ingress(headers: Mapping[str, str]) -> Iterator[None]:
    """Make an inbound request's ``traceparent`` the current trace context while inside,
    so runs started there join the caller's trace."""
    extracted = _propagator.extract(dict(headers))
    token = otel_context.attach(extracted)
    try:
        yield
    finally:
        otel_context.detach(token)


# -- spans the engine opens --------------------------------------------------------------------
class RunStart:
    """What :func:`start_span` yields: the traceparent to store with a new run."""

    def __init__(self, span: Span, traceparent: str, *, fresh: bool = False) -> None:
        self.span = span
        self.traceparent = traceparent
        self.fresh = fresh  # no trace context around the start: each run begins a trace

    def created(self, run_id: str) -> None:
        if self.span.is_recording():
            self.span.set_attribute("surefoot.run_id", run_id)

    def traceparent_for_run(self) -> str:
        """The traceparent for one run of a batch: the start's, or, where there is no
        trace context to join, a new trace for each run (one trace per run)."""
        return new_traceparent() if self.fresh else self.traceparent


def new_traceparent(trace_id: int | None = None) -> str:
    """A sampled traceparent with a random span id, in a new trace unless ``trace_id``."""
    trace = trace_id or secrets.randbits(128) or 1
    return f"00-{trace:032x}-{secrets.randbits(64) or 1:016x}-01"


def start_span(
    workflow: str, correlation_id: str | None, *, runs: int | None = None
) -> AbstractContextManager[RunStart]:
    """Around ``App.start`` (or ``start_many`` of ``runs`` runs): yields the traceparent
    to store with the new runs (the span's own, or, when no tracer records spans, the
    current span's, or a new random one)."""
    if tracer_provider_installed():
        return _recorded_start(workflow, correlation_id, runs)
    # What the API's no-op tracer would yield, without making and entering its span.
    outer = trace.get_current_span().get_span_context()
    if outer.is_valid:
        return nullcontext(RunStart(INVALID_SPAN, format_traceparent(outer)))
    return nullcontext(RunStart(INVALID_SPAN, new_traceparent(), fresh=True))


@contextmanager
def _recorded_start(
    workflow: str, correlation_id: str | None, runs: int | None
) -> Iterator[RunStart]:
    attributes: dict[str, str | int] = {
        "surefoot.workflow": workflow,
        "surefoot.correlation_id": correlation_id or "",
    }
    if runs is not None:
        attributes["surefoot.runs"] = runs
    with _tracer.start_as_current_span(
        f"surefoot.start {workflow}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        span_context = span.get_span_context()
        if span_context.is_valid:
            yield RunStart(span, format_traceparent(span_context))
            return
        outer = trace.get_current_span().get_span_context()
        if outer.is_valid:
            yield RunStart(span, new_traceparent(outer.trace_id))
        else:
            yield RunStart(span, new_traceparent(), fresh=True)


def child_traceparent(trace_context: str | None) -> str | None:
    """A new span id in the same trace (a forked run joins its source's trace)."""
    remote = parse_traceparent(trace_context)
    if remote is None:
        return None
    span_id = secrets.randbits(64) or 1
    return f"00-{remote.trace_id:032x}-{span_id:016x}-{int(remote.trace_flags):02x}"


def run_span(
    run_id: str, workflow: str, correlation_id: str | None, trace_context: str | None, **attrs: Any
) -> AbstractContextManager[Span]:
    """One execution of a run, under the run's stored trace context."""
    if not tracer_provider_installed():
        return _Propagated(_parent(trace_context))
    attributes = {
        "surefoot.run_id": run_id,
        "surefoot.workflow": workflow,
        "surefoot.correlation_id": correlation_id or "",
        **attrs,
    }
    return _tracer.start_as_current_span(
        f"surefoot.run {workflow}",
        context=_parent(trace_context),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


def attempt_span(step: str, position: int, attempt: int) -> AbstractContextManager[Span]:
    """One step attempt, under the current run span. Exceptions are not recorded on it
    (their text may hold secrets): :func:`mark_failed` sets the classified outcome."""
    if not tracer_provider_installed():
        return _Propagated(None)
    return _tracer.start_as_current_span(
        f"surefoot.step {step}",
        attributes={
            "surefoot.step": step,
            "surefoot.position": position,
            "surefoot.attempt": attempt,
        },
        record_exception=False,
        set_status_on_exception=False,
    )


def tracer_provider_installed() -> bool:
    """Whether spans go to a tracer provider (the application's, or :func:`configure_tracing`'s).

    Until one is installed the global provider is the API's proxy, and its tracers record
    nothing: a new span is the parent's non-recording span, or one carrying the parent's
    span context, so the trace context still propagates (OpenTelemetry's behaviour without
    an SDK). The engine's hot path then uses :class:`_Propagated`, which does the same.
    """
    return not isinstance(trace.get_tracer_provider(), (ProxyTracerProvider, NoOpTracerProvider))


class _Propagated:
    """``start_as_current_span`` of the API's no-op tracer, without its three nested
    generator-based context managers (which cost more than the rest of a step attempt's
    bookkeeping): the same span, current while inside, ended on exit. A non-recording span
    records no exception or status, so there is nothing else to do."""

    __slots__ = ("_parent", "_span", "_token")

    def __init__(self, parent: otel_context.Context | None) -> None:
        self._parent = parent

    def __enter__(self) -> Span:
        span = _api_tracer.start_span("", context=self._parent)  # the no-op tracer drops names
        self._token = otel_context.attach(trace.set_span_in_context(span))
        self._span = span
        return span

    def __exit__(self, *_exc_info: object) -> None:
        try:
            otel_context.detach(self._token)
        finally:
            self._span.end()


def mark_failed(span: Span, message: str, **attrs: str | int | float | bool) -> None:
    if not span.is_recording():
        return
    span.set_attributes(attrs)
    span.set_status(Status(StatusCode.ERROR, redaction.active().text(message)[:500]))


def current_span() -> Span:
    return trace.get_current_span()


# -- export ---------------------------------------------------------------------------------------
def configure_tracing(settings: Settings) -> bool:
    """Install a tracer provider exporting over OTLP/HTTP when ``otlp_endpoint`` is set.
    Returns whether it did. The SDK and the exporter are imported only then (the exporter
    is the ``otlp`` extra): a process that exports no spans starts without them."""
    if not settings.otlp_endpoint:
        return False
    # Deferred on purpose, like the exporter below.
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    try:
        exporter_module = importlib.import_module(
            "opentelemetry.exporter.otlp.proto.http.trace_exporter"
        )
    except ImportError as exc:
        raise ConfigError(
            "otlp_endpoint is set but the OTLP exporter is not installed; install "
            "surefoot[otlp] (opentelemetry-exporter-otlp-proto-http) or unset "
            "SUREFOOT_OTLP_ENDPOINT"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter_module.OTLPSpanExporter(endpoint=settings.otlp_endpoint))
    )
    trace.set_tracer_provider(provider)
    return True
