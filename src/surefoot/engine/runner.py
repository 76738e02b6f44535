"""Run one claimed run to its next stop: finished, waiting, parked, failed or released."""

from __future__ import annotations

import asyncio
from typing import Any

from surefoot.domain.failures import DEFAULT_RULES, FailureClass, classify
from surefoot.domain.status import RunStatus
from surefoot.engine.attempts import StepMixin
from surefoot.engine.compensation import CompensationMixin
from surefoot.engine.context import WorkflowContext, current_execution_var
from surefoot.engine.execution import RunControl, StopRun
from surefoot.engine.facts import error_json, extract_facts
from surefoot.engine.runtime import Runtime, log
from surefoot.engine.waits import WaitMixin
from surefoot.errors import (
    Cancelled,
    LeaseRevoked,
    NonDeterminismError,
    Released,
    SerializationError,
    StepFailedError,
    StoreInterrupted,
    Suspended,
)
from surefoot.observability import instrument, redaction
from surefoot.store.base import ClaimedRun


class Execution(StepMixin, WaitMixin, CompensationMixin):
    """Everything one execution of a run can do."""

    def run_workflow(self) -> Any:
        token = current_execution_var.set(self)
        try:
            args, kwargs = self.workflow.signature.decode_call(self.run.inputs)
            ctx = WorkflowContext(self)
            if self.workflow.is_async:
                return asyncio.run(self.workflow.fn(ctx, *args, **kwargs))
            return self.workflow.fn(ctx, *args, **kwargs)
        finally:
            current_execution_var.reset(token)

    def stop_for(self, exc: Exception) -> StopRun:
        """Turn an exception that escaped workflow code into the run's failure."""
        if isinstance(exc, NonDeterminismError):
            # A code change under an in-flight run: do not undo work; deploy and redrive.
            return StopRun(
                FailureClass.PERMANENT,
                str(exc),
                compensate=False,
                rule="non-determinism",
                error=error_json(exc),
            )
        facts = extract_facts(exc, step_idempotent=False, now_epoch=self.rt.clock().timestamp())
        if isinstance(exc, StepFailedError) and exc.failure_class:
            cls, rule = FailureClass(exc.failure_class), "step-failure-not-handled"
        else:
            found = classify(facts, (self.workflow.rules, self.rt.rules, DEFAULT_RULES))
            cls, rule = found.failure_class, found.rule
        message = redaction.active().text(str(exc))
        where = f"workflow {self.workflow.name} raised {type(exc).__name__}: {message}"
        return StopRun(
            cls,
            where,
            compensate=cls is not FailureClass.TRANSIENT,
            rule=rule,
            error=error_json(exc, facts),
        )

    def fail(self, stop: StopRun) -> None:
        compensated = False
        if stop.compensate:
            try:
                compensated = self.compensate(stop.reason, stop.to_json())
            except StopRun as failed:
                failed.reason = f"{stop.reason}; then {failed.reason}"
                self.finish_failed(failed, compensated=True)
                return
        self.finish_failed(stop, compensated=compensated)

    def cancel(self) -> None:
        try:
            self.compensate("cancelled by an operator", None)
        except StopRun as failed:
            self.finish_failed(failed, compensated=True)
            return
        self.finish_cancelled("cancelled by an operator")


def execute(rt: Runtime, claimed: ClaimedRun, control: RunControl) -> RunStatus | None:
    """Carry one claimed run as far as it goes now. Never raises for run outcomes.
    Returns the end this execution committed (succeeded, failed or cancelled); None when
    the run waits, was released, or the execution stopped."""
    execution = Execution(rt, claimed, control)
    if claimed.taken_over:
        run = claimed.run
        instrument.lease_takeover(run.workflow, run.run_id, len(claimed.interrupted))
    try:
        with instrument.execution(claimed.run, claimed.lease.worker_id):
            _advance(execution)
    except Suspended:
        pass
    except Released:
        try:
            execution.fenced(
                lambda: rt.store.release(claimed.lease, rt.clock(), interrupt_open_attempts=False)
            )
        except LeaseRevoked:
            log.warning("run %s: lease taken over while releasing", claimed.run.run_id)
    except LeaseRevoked:
        log.warning(
            "run %s: lease taken over by another worker; stopped without writing",
            claimed.run.run_id,
        )
    except StoreInterrupted as interrupted:
        log.error(
            "run %s: the store stayed unavailable (%s); the execution stopped here and the "
            "run resumes from its history once its lease expires",
            claimed.run.run_id,
            interrupted.__cause__,
        )
    finally:
        rt.on_finished(claimed.run.run_id)
    return execution.ended


def _advance(execution: Execution) -> None:
    run, rt = execution.run, execution.rt
    try:
        if run.status is RunStatus.COMPENSATING:
            execution.fail(StopRun.from_json(run.error))
        elif run.cancel_requested:
            execution.cancel()
        elif run.deliveries > rt.settings.max_deliveries:
            poison = StopRun(
                FailureClass.PERMANENT,
                f"claimed {run.deliveries} times without finishing (poison run; "
                f"max_deliveries={rt.settings.max_deliveries})",
                compensate=False,
                rule="max-deliveries",
            )
            execution.finish_failed(poison, compensated=False)
        else:
            try:
                value = execution.run_workflow()
            except (Suspended, Released, Cancelled, LeaseRevoked, StopRun, StoreInterrupted):
                raise
            except Exception as exc:
                raise execution.stop_for(exc) from exc
            try:
                execution.finish_success(value)
            except (NonDeterminismError, SerializationError) as exc:
                raise execution.stop_for(exc) from exc
    except StopRun as stop:
        execution.fail(stop)
    except Cancelled:
        execution.cancel()
