"""What the engine tells observability: one call per event, each updating the log, the
metrics and the current span together, so the three never disagree.

Kept cheap for the engine's hot path: no store queries, a counter increment or a
histogram observation, and log lines only for what an operator acts on (failures,
routes, takeovers); the per-attempt lines are at DEBUG. A line for each run that starts
and each that succeeds goes to the logger ``surefoot.runs`` at INFO, which
:func:`~surefoot.observability.logging.configure_logging` turns off unless
``log_each_run`` is set (or the level is DEBUG); the ends of failed and cancelled runs go
there at WARNING and are always written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

from opentelemetry.trace import Span

from surefoot.domain.records import RunRecord
from surefoot.observability import logging as log_context
from surefoot.observability import metrics, redaction, tracing

log = logging.getLogger("surefoot.engine")
runs_log = logging.getLogger(log_context.RUNS_LOGGER)


class _Scope:
    """Fields bound to the log context and a span made current, both undone on the way out.

    A plain class rather than a generator-based context manager: around every step attempt,
    that machinery costs more than the binding and the span themselves.
    """

    __slots__ = ("_fields", "_span", "_tokens")

    def __init__(self, fields: Mapping[str, Any], span: AbstractContextManager[Span]) -> None:
        self._fields = fields
        self._span = span

    def __enter__(self) -> None:
        self._tokens = log_context.bind(self._fields)
        try:
            self._span.__enter__()
        except BaseException:
            log_context.reset(self._tokens)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        try:
            return self._span.__exit__(exc_type, exc, traceback)
        finally:
            log_context.reset(self._tokens)


# -- runs -------------------------------------------------------------------------------------
def run_started(workflow: str, run_id: str, correlation_id: str | None) -> None:
    metrics.RUNS_STARTED.labels(workflow).inc()
    runs_log.info(
        "run started",
        extra={"run_id": run_id, "workflow": workflow, "correlation_id": correlation_id},
    )


@contextmanager
def execution(run: RunRecord, worker_id: str) -> Iterator[None]:
    """Around one execution of a claimed run: its log context and its span."""
    fields = {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "correlation_id": run.correlation_id,
        "generation": run.generation,
    }
    span = tracing.run_span(
        run.run_id,
        run.workflow,
        run.correlation_id,
        run.trace_context,
        **{
            "surefoot.generation": run.generation,
            "surefoot.deliveries": run.deliveries,
            "surefoot.worker_id": worker_id,
        },
    )
    with _Scope(fields, span):
        log.debug("execution started", extra={"status": run.status.value})
        yield


def run_finished(
    workflow: str, run_id: str, outcome: str, failure_class: str = "", reason: str = ""
) -> None:
    metrics.RUNS_FINISHED.labels(workflow, outcome, failure_class).inc()
    span = tracing.current_span()
    if span.is_recording():
        span.set_attribute("surefoot.outcome", outcome)
        if failure_class:
            tracing.mark_failed(span, reason, **{"surefoot.failure_class": failure_class})
    if outcome == "succeeded":
        runs_log.info("run %s (%s) succeeded", run_id, workflow, extra={"outcome": outcome})
    else:
        reason = redaction.active().text(reason)
        runs_log.warning(
            "run %s (%s) %s%s: %s",
            run_id,
            workflow,
            outcome,
            f" [{failure_class}], dead-lettered" if failure_class else "",
            reason,
            extra={"outcome": outcome, "failure_class": failure_class or None, "reason": reason},
        )


def run_suspended(wait_reason: str) -> None:
    log.debug("run suspended", extra={"wait_reason": wait_reason})


def lease_takeover(workflow: str, run_id: str, interrupted: int) -> None:
    metrics.LEASE_TAKEOVERS.labels(workflow).inc()
    log.warning(
        "run taken over from an expired lease",
        extra={"run_id": run_id, "workflow": workflow, "interrupted_attempts": interrupted},
    )


# -- step attempts ------------------------------------------------------------------------------
def attempt(step: str, position: int, number: int) -> AbstractContextManager[None]:
    """Around one step attempt, its routing included: its log context and its span."""
    return _Scope(
        {"step": step, "position": position, "attempt": number},
        tracing.attempt_span(step, position, number),
    )


def step_body_duration(workflow: str, step: str, started: float) -> None:
    """``started`` is a ``time.perf_counter()`` reading taken before the body ran."""
    metrics.STEP_DURATION.labels(workflow, step).observe(time.perf_counter() - started)


def attempt_succeeded(workflow: str, step: str) -> None:
    metrics.STEP_ATTEMPTS.labels(workflow, step, "succeeded", "", "").inc()
    log.debug("step attempt succeeded")


def attempt_failed(
    workflow: str,
    step: str,
    attempt: int,
    *,
    failure_class: str,
    rule: str | None,
    route: str,
    decision: str,
    error_type: str,
    message: str,
    interrupted: bool,
) -> None:
    """A failed (or interrupted) attempt, classified and routed: why the engine chose what
    it does next is on the log line, the span and the counters."""
    outcome = "interrupted" if interrupted else "failed"
    metrics.STEP_ATTEMPTS.labels(workflow, step, outcome, failure_class, route).inc()
    if route == "retry":
        metrics.STEP_RETRIES.labels(workflow, step).inc()
    fields = {
        "failure_class": failure_class,
        "rule": rule,
        "route": route,
        "decision": decision,
        "error_type": error_type,
        "outcome": outcome,
    }
    message = redaction.active().text(message)
    attributes = {f"surefoot.{k}": v for k, v in fields.items() if v is not None}
    span = tracing.current_span()
    if interrupted:  # an attempt of an earlier execution: noted on this execution's span
        if span.is_recording():
            span.add_event("earlier attempt interrupted", attributes)
    else:
        tracing.mark_failed(
            span, f"{error_type}: {message}" if message else error_type, **attributes
        )
    log.warning(
        "step %s attempt %d %s [%s -> %s]: %s",
        step,
        attempt,
        outcome,
        failure_class,
        route,
        message or error_type,
        extra=fields,
    )


def store_call(operation: str, started: float) -> None:
    """``started`` is a ``time.perf_counter()`` reading taken before the call."""
    metrics.STORE_LATENCY.labels(operation).observe(time.perf_counter() - started)
