"""One execution of one claimed run: replay what is committed, execute what is not.

Workflow code re-runs from the top on every execution. Each step call takes
the next *position*; if the journal has a committed result there, the call
returns it without running the step (guarantee 2). Otherwise the step runs as
a recorded attempt (see ``attempts.py``). The result of a step whose start was
written is committed at once. An idempotent step's (start not written) is *held*
and committed with the run's next write, in the same transaction: quick steps'
ends gather until a step not known to be quick, a wait, any other write or the
run's end (see ``checkpoint``). A different step name or kind at a recorded
position is a :class:`NonDeterminismError`, never a silent mis-replay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from surefoot.domain.codec import canonical
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import (
    AttemptRecord,
    DeadLetter,
    JournalEntry,
    Lease,
    ReviewItem,
    RunRecord,
)
from surefoot.domain.status import DeadLetterStatus, JournalKind, RunStatus
from surefoot.engine.definitions import WorkflowDef
from surefoot.engine.runtime import Runtime
from surefoot.errors import (
    Cancelled,
    LeaseLostError,
    LeaseRevoked,
    NonDeterminismError,
    Released,
    StepFailedError,
    StoreError,
    StoreInterrupted,
)
from surefoot.observability import instrument
from surefoot.store.base import ClaimedRun, RunEnd, StepCommit, Suspension

T = TypeVar("T")

# At most this many held step ends: a crash re-runs no more than this many quick steps.
MAX_HELD_STEPS = 32


class StopRun(BaseException):
    """The run stops here: its route ends in failure (with or without compensation)."""

    def __init__(
        self,
        failure_class: FailureClass,
        reason: str,
        *,
        compensate: bool,
        rule: str | None = None,
        position: int | None = None,
        step: str | None = None,
        attempts: int = 0,
        error: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.failure_class = failure_class
        self.reason = reason
        self.compensate = compensate
        self.rule = rule
        self.position = position
        self.step = step
        self.attempts = attempts
        self.error = error

    def to_json(self) -> str:
        return canonical(
            {
                "failure_class": self.failure_class.value,
                "reason": self.reason,
                "rule": self.rule,
                "position": self.position,
                "step": self.step,
                "attempts": self.attempts,
                "error": json.loads(self.error) if self.error else None,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> StopRun:
        data = json.loads(text) if text else {}
        error = data.get("error")
        return cls(
            FailureClass(data.get("failure_class", "permanent")),
            data.get("reason", "unknown failure"),
            compensate=True,
            rule=data.get("rule"),
            position=data.get("position"),
            step=data.get("step"),
            attempts=data.get("attempts", 0),
            error=canonical(error) if error else None,
        )


class RunControl:
    """What the worker tells a running execution: drain, cancel, lease lost."""

    def __init__(self) -> None:
        self.draining = False
        self.cancelled: set[str] = set()  # by run: a cancel request holds for every execution
        self.lost: set[Lease] = set()  # by lease: a later claim of the same run is a new lease

    def check(self, lease: Lease) -> None:
        if lease in self.lost:
            raise LeaseRevoked(lease.run_id)
        if lease.run_id in self.cancelled:
            raise Cancelled(lease.run_id)
        if self.draining:
            raise Released(lease.run_id)


@dataclass
class Done:
    """An attempt loop that ended with a value (committed or reconciled)."""

    value: Any


class ExecutionBase:
    """State and store access shared by the step and wait mixins."""

    def __init__(self, rt: Runtime, claimed: ClaimedRun, control: RunControl) -> None:
        self.rt = rt
        self.run: RunRecord = claimed.run
        self.lease: Lease = claimed.lease
        self.history = claimed.history
        self.workflow: WorkflowDef = rt.workflows[claimed.run.workflow]
        self.control = control
        self.position = 0
        self.is_async = self.workflow.is_async
        # Write idempotent steps' starts before they run (see ``attempts``): for the first
        # step run after a takeover, so that a step that keeps killing workers leaves a
        # record each time (``_prepare`` turns it off after that step).
        self.record_starts = (
            claimed.taken_over or bool(claimed.interrupted) or rt.settings.record_idempotent_starts
        )
        # Successful step ends not committed yet, in order: committed before anything else
        # the run writes (``settle``), or with the run's end. ``pending_quick``: every one of
        # them ran quicker than ``quick_step_s``, so the next step may run before they commit.
        self.pending: list[StepCommit] = []
        self.pending_quick = True
        self.ended: RunStatus | None = None  # the end this execution committed, if any

    # -- helpers -------------------------------------------------------------------------
    def next_position(self) -> int:
        self.position += 1
        return self.position

    def hold(self, step: StepCommit, *, quick: bool) -> None:
        """Leave a successful step end for the run's next write (``settle`` or the end)."""
        self.pending.append(step)
        self.pending_quick = self.pending_quick and quick

    def checkpoint(self, next_step: str | None = None) -> None:
        """A step boundary: the place to stop for a drain, a cancel or a lost lease. The
        held step ends are committed here, before the next step or wait begins, unless
        every one of them is a quick idempotent step's, there are fewer than
        ``MAX_HELD_STEPS``, and ``next_step`` was quick when it last ran in this process:
        such steps are cheap to run again, so a crash before their commit costs little,
        and they commit together with the run's next write, which comes soon. A step not
        known to be quick (so perhaps a long one) finds every earlier end committed; so
        does a step whose start is written first, or any other write."""
        if self.pending and not (
            self.pending_quick
            and len(self.pending) < MAX_HELD_STEPS
            and next_step is not None
            and self.rt.quick_steps.get(next_step, False)
        ):
            self.settle()
        self.control.check(self.lease)

    def settle(self) -> None:
        """Commit the held step ends now, in order, in one transaction of their own."""
        steps, self.pending, self.pending_quick = self.pending, [], True
        if not steps:
            return
        self.fenced(lambda: self.rt.store.commit_steps(self.lease, steps))
        self.rt.crash.reached("step.after_commit")

    def fenced(self, call: Callable[[], T]) -> T:
        """Every store call of an execution goes through here: a lost lease or a store
        outage unwinds the workflow as a signal that user code cannot catch. Held step
        ends are committed first, so every write lands after them, in order."""
        if self.pending:
            self.settle()
        started = time.perf_counter()
        try:
            return call()
        except LeaseLostError:
            self.control.lost.add(self.lease)
            raise LeaseRevoked(self.run.run_id) from None
        except StoreError as exc:
            raise StoreInterrupted(f"run {self.run.run_id}: {exc}") from exc
        finally:
            instrument.store_call("execution", started)

    def expect(self, entry: JournalEntry, kind: JournalKind, name: str) -> None:
        if entry.kind is not kind or entry.name != name:
            raise NonDeterminismError(
                f"run {self.run.run_id} ({self.run.workflow}), position {entry.position}: "
                f"history recorded {entry.kind.value} {entry.name!r} but the workflow now "
                f"calls {kind.value} {name!r} there. The workflow code changed while this run "
                "was in flight; deploy the code it started with to finish it, or fork it."
            )

    def expect_attempts(self, position: int, name: str) -> list[AttemptRecord]:
        attempts = self.history.attempts.get(position, [])
        if attempts and attempts[-1].step != name:
            raise NonDeterminismError(
                f"run {self.run.run_id} ({self.run.workflow}), position {position}: an attempt "
                f"of step {attempts[-1].step!r} is recorded there but the workflow now calls "
                f"{name!r}. The workflow code changed while this run was in flight."
            )
        return attempts

    def suspend(self, suspension: Suspension) -> None:
        now = self.rt.clock()
        self.fenced(lambda: self.rt.store.suspend(self.lease, suspension, now))
        instrument.run_suspended(suspension.wait_reason)
        self.rt.crash.reached("wait.suspended")

    def record_review(self, item: ReviewItem) -> None:
        self.history.reviews.setdefault(item.position, []).append(item)

    def step_failed_from(self, entry: JournalEntry) -> StepFailedError:
        data = json.loads(entry.error or "{}")
        return StepFailedError(
            data.get("message", "step failed"),
            step=entry.name,
            failure_class=data.get("failure_class", ""),
            error_type=data.get("type", ""),
        )

    def raise_stop(self, stop: StopRun) -> NoReturn:
        raise stop

    # -- the end of a run ------------------------------------------------------------------
    def finish_success(self, value: Any) -> None:
        recorded = max(self.history.journal, default=0)
        if recorded > self.position:
            entry = self.history.journal[recorded]
            raise NonDeterminismError(
                f"run {self.run.run_id} ({self.run.workflow}) returned after {self.position} "
                f"positions, but history records {entry.kind.value} {entry.name!r} at position "
                f"{recorded}. The workflow code changed while this run was in flight."
            )
        output = self.workflow.encode_output(value)
        # The step ends still held commit with the run's end, in one transaction.
        steps, self.pending, self.pending_quick = tuple(self.pending), [], True
        self.rt.crash.reached("run.before_finish")
        now = self.rt.clock()
        self.fenced(
            lambda: self.rt.store.finish_run(
                self.lease, RunEnd(RunStatus.SUCCEEDED, output=output, steps=steps), now
            )
        )
        self.ended = RunStatus.SUCCEEDED
        if steps:
            self.rt.crash.reached("step.after_commit")
        instrument.run_finished(self.run.workflow, self.run.run_id, RunStatus.SUCCEEDED.value)

    def dead_letter_for(self, stop: StopRun, *, compensated: bool) -> DeadLetter:
        last_error = None
        if stop.error:
            data = json.loads(stop.error)
            last_error = f"{data.get('type', '')}: {data.get('message', '')}".strip(": ")
        return DeadLetter(
            run_id=self.run.run_id,
            generation=self.run.generation,
            workflow=self.run.workflow,
            failure_class=stop.failure_class,
            reason=stop.reason,
            attempts=stop.attempts,
            status=DeadLetterStatus.OPEN,
            dead_lettered_at=self.rt.clock(),
            last_error=last_error,
            position=stop.position,
            step=stop.step,
            compensated=compensated,
        )

    def finish_failed(self, stop: StopRun, *, compensated: bool) -> None:
        dead = self.dead_letter_for(stop, compensated=compensated)
        now = self.rt.clock()
        self.fenced(
            lambda: self.rt.store.finish_run(
                self.lease, RunEnd(RunStatus.FAILED, error=stop.to_json(), dead_letter=dead), now
            )
        )
        self.ended = RunStatus.FAILED
        instrument.run_finished(
            self.run.workflow,
            self.run.run_id,
            RunStatus.FAILED.value,
            stop.failure_class.value,
            stop.reason,
        )

    def finish_cancelled(self, reason: str) -> None:
        now = self.rt.clock()
        error = canonical({"reason": reason})
        self.fenced(
            lambda: self.rt.store.finish_run(
                self.lease, RunEnd(RunStatus.CANCELLED, error=error), now
            )
        )
        self.ended = RunStatus.CANCELLED
        instrument.run_finished(
            self.run.workflow, self.run.run_id, RunStatus.CANCELLED.value, reason=reason
        )
