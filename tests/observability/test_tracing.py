"""One run is one trace: across a crash, a takeover by another worker, and a durable wait."""

from __future__ import annotations

import sys
import time

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import surefoot as sf
from surefoot.engine.execution import RunControl
from surefoot.engine.runner import execute
from surefoot.engine.runtime import utc_now
from surefoot.errors import ConfigError
from surefoot.observability import metrics, tracing
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.observability.conftest import spans_of_run


def finished_spans_of_run(
    exporter: InMemorySpanExporter, run_id: str, name: str, count: int
) -> list[ReadableSpan]:
    """The run's spans once ``count`` spans called ``name`` have ended (bounded wait): an
    execution's span ends just after its result is committed, which the client may see
    first."""
    deadline = time.monotonic() + 5
    found = spans_of_run(exporter, run_id)
    while sum(s.name == name for s in found) < count and time.monotonic() < deadline:
        time.sleep(0.01)
        found = spans_of_run(exporter, run_id)
    return found


class _ProcessDied(BaseException):
    """Stands in for kill -9: unwinds past every handler of the engine."""


def test_spans_of_a_run_interrupted_by_a_crash_and_resumed_elsewhere_form_one_trace(
    make_app: MakeApp, start_worker: StartWorker, spans: InMemorySpanExporter
) -> None:
    # Starts written first, so the attempt the crash cut short is recorded and traced.
    app = make_app(lease_s=1.0, heartbeat_s=0.2, record_idempotent_starts=True)
    crash = {"armed": True}

    @app.step
    def fetch(x: int) -> int:
        return x + 1

    @app.step(idempotent=True)
    def post(x: int) -> int:
        if crash["armed"]:
            crash["armed"] = False
            raise _ProcessDied
        return x * 10

    @app.workflow
    def flow(ctx: sf.WorkflowContext, x: int) -> int:
        return post(fetch(x))

    handle = app.start(flow, 1)
    stored = tracing.parse_traceparent(handle.record().trace_context)
    assert stored is not None

    # The first worker commits fetch, starts post, and dies inside it holding the lease.
    [claimed] = app.store.claim(
        "doomed-worker", workflows=["flow"], queues=None, limit=1, lease_s=0.3, now=utc_now()
    )
    with pytest.raises(_ProcessDied):
        execute(app.runtime, claimed, RunControl())
    takeovers = metrics.sample("surefoot_lease_takeovers_total", {"workflow": "flow"})
    time.sleep(0.35)  # the dead worker's lease expires

    start_worker(app)
    assert handle.result(timeout=10) == 20

    run_spans = finished_spans_of_run(spans, handle.run_id, "surefoot.run flow", 2)
    executions = [s for s in run_spans if s.name == "surefoot.run flow"]
    assert len(executions) == 2  # the crashed execution and the one that finished
    assert {s.context.trace_id for s in run_spans} == {stored.trace_id}
    # Each execution hangs under the context stored with the run, whichever process ran it.
    assert all(s.parent is not None and s.parent.span_id == stored.span_id for s in executions)
    resumed = max(executions, key=lambda s: s.start_time or 0)
    [noted] = [e for e in resumed.events if e.name == "earlier attempt interrupted"]
    assert noted.attributes is not None
    assert noted.attributes["surefoot.failure_class"] == "transient"  # idempotent: safe
    assert noted.attributes["surefoot.route"] == "retry"
    post_attempts = [
        s for s in run_spans if s.name.startswith("surefoot.step") and "post" in s.name
    ]
    assert [s.attributes["surefoot.attempt"] for s in post_attempts if s.attributes] == [1, 2]
    assert metrics.sample("surefoot_lease_takeovers_total", {"workflow": "flow"}) == takeovers + 1
    interrupted = [
        e
        for e in app.store.audit_entries(after_seq=0, limit=500)
        if e.action == "attempt.interrupted" and e.entity_id.startswith(handle.run_id)
    ]
    assert interrupted
    assert {e.correlation_id for e in interrupted} == {handle.record().correlation_id}


def test_a_run_resumed_after_a_durable_wait_stays_in_its_trace_and_the_start_span_is_its_root(
    make_app: MakeApp, start_worker: StartWorker, spans: InMemorySpanExporter
) -> None:
    app = make_app()

    @app.step
    def one() -> int:
        return 1

    @app.workflow
    def sleepy(ctx: sf.WorkflowContext) -> int:
        first = one()
        ctx.sleep(0.05)
        return first + one()

    handle = app.start(sleepy)
    start_worker(app)
    assert handle.result(timeout=10) == 2
    run_spans = finished_spans_of_run(spans, handle.run_id, "surefoot.run sleepy", 2)
    [started] = [s for s in run_spans if s.name == "surefoot.start sleepy"]
    executions = [s for s in run_spans if s.name == "surefoot.run sleepy"]
    assert len(executions) == 2
    assert len({s.context.trace_id for s in run_spans}) == 1
    assert handle.record().trace_context == tracing.format_traceparent(started.context)
    assert all(s.parent and s.parent.span_id == started.context.span_id for s in executions)


def test_a_started_run_joins_the_trace_of_the_ingress_request(make_app: MakeApp) -> None:
    app = make_app()

    @app.workflow
    def noop(ctx: sf.WorkflowContext) -> None:
        return None

    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.ingress({"traceparent": caller}):
        handle = app.start(noop)
    stored = tracing.parse_traceparent(handle.record().trace_context)
    assert stored is not None
    assert f"{stored.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_correlation_id_comes_from_the_header_then_the_traceparent_then_is_new() -> None:
    assert tracing.correlation_id_from_headers({"X-Correlation-ID": "abc"}) == "abc"
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert (
        tracing.correlation_id_from_headers({"traceparent": parent})
        == "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert tracing.correlation_id_from_headers({"x-correlation-id": "bad\nid"}) != "bad\nid"
    made = tracing.correlation_id_from_headers({})
    assert len(made) == 32
    assert made != tracing.correlation_id_from_headers({})


def test_otlp_export_is_off_unless_an_endpoint_is_configured() -> None:
    assert tracing.configure_tracing(sf.Settings()) is False


def test_otlp_export_without_the_extra_installed_is_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError, match=r"surefoot\[otlp\]"):
        tracing.configure_tracing(sf.Settings(otlp_endpoint="http://127.0.0.1:4318/v1/traces"))


def test_a_batch_start_is_one_span_and_its_runs_are_its_children(
    make_app: MakeApp, start_worker: StartWorker, spans: InMemorySpanExporter
) -> None:
    app = make_app()

    @app.step(idempotent=True)
    def double(x: int) -> int:
        return 2 * x

    @app.workflow
    def flow(ctx: sf.WorkflowContext, x: int) -> int:
        return double(x)

    handles = app.start_many(flow, [(1,), (2,), (3,)])
    [batch] = [s for s in spans.get_finished_spans() if s.name == "surefoot.start flow"]
    assert (batch.attributes or {})["surefoot.runs"] == 3
    start_worker(app)
    assert [h.result(timeout=20) for h in handles] == [2, 4, 6]

    for handle in handles:
        stored = tracing.parse_traceparent(handle.record().trace_context)
        assert stored is not None
        assert stored.span_id == batch.context.span_id
        found = finished_spans_of_run(spans, handle.run_id, "surefoot.run flow", 1)
        [run_span] = [s for s in found if s.name == "surefoot.run flow"]
        assert run_span.parent is not None
        assert run_span.parent.span_id == batch.context.span_id
        assert run_span.context.trace_id == batch.context.trace_id
