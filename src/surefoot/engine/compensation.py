"""Compensation: undo committed steps, newest first, each undo itself durable.

A compensation is recorded like a step attempt (kind ``compensation``); a
committed one is never run again, so a crash mid-compensation resumes with
the next one. Transient failures of a compensation are retried per the step's
retry policy; anything else stops compensating and leaves the run in the
dead-letter queue with the reason, for a person.
"""

from __future__ import annotations

import json
import time
from functools import partial

from surefoot.domain.failures import DEFAULT_RULES, FailureClass, classify
from surefoot.domain.records import AttemptRecord, AttemptResult
from surefoot.domain.retry import backoff_delay_s
from surefoot.domain.status import AttemptKind, AttemptOutcome, JournalKind, JournalStatus
from surefoot.engine.context import StepContext, current_step_var
from surefoot.engine.definitions import DEFAULT_STEP_RETRY, StepDef
from surefoot.engine.execution import ExecutionBase, StopRun
from surefoot.engine.facts import error_json, extract_facts

_DONE_OUTCOMES = (AttemptOutcome.SUCCEEDED, AttemptOutcome.RECONCILED)


class CompensationMixin(ExecutionBase):
    def compensate(self, reason: str, error: str | None) -> bool:
        """Run every pending compensation. Returns whether any compensation exists."""
        store = self.rt.store
        now = self.rt.clock()
        self.fenced(lambda: store.start_compensating(self.lease, reason, error, now))
        history = self.fenced(lambda: store.load_history(self.run.run_id))
        done = self.fenced(lambda: store.compensated_positions(self.run.run_id))
        attempts = self.fenced(lambda: store.list_attempts(self.run.run_id))
        any_hook = False
        for position in sorted(history.journal, reverse=True):
            entry = history.journal[position]
            step = self.rt.steps.get(entry.name)
            if (
                entry.kind is not JournalKind.STEP
                or entry.status is not JournalStatus.COMMITTED
                or step is None
                or step.compensate is None
            ):
                continue
            any_hook = True
            if position in done:
                continue
            at_position = [a for a in attempts if a.position == position]
            self._compensate_one(step, position, entry.output, at_position)
        return any_hook

    def _compensate_one(
        self, step: StepDef, position: int, output: str | None, attempts: list[AttemptRecord]
    ) -> None:
        assert step.compensate is not None
        store = self.rt.store
        done = [a for a in attempts if a.kind is AttemptKind.STEP and a.outcome in _DONE_OUTCOMES]
        inputs = done[-1].inputs if done and done[-1].inputs else "{}"
        args, kwargs = step.signature.decode_call(inputs)
        result = step.decode_result(output)
        previous = [a for a in attempts if a.kind is AttemptKind.COMPENSATION]
        number = max((a.attempt for a in previous), default=0)
        policy = step.retry or DEFAULT_STEP_RETRY
        tries = 0
        key = f"{self.run.run_id}:{position}:compensate"
        while True:
            number += 1
            tries += 1
            started = AttemptRecord(
                run_id=self.run.run_id,
                position=position,
                kind=AttemptKind.COMPENSATION,
                attempt=number,
                generation=self.run.generation,
                step=step.name,
                idempotency_key=key,
                outcome=AttemptOutcome.RUNNING,
                started_at=self.rt.clock(),
                inputs=inputs,
                worker_id=self.lease.worker_id,
            )
            self.fenced(partial(store.begin_attempt, self.lease, started))
            token = current_step_var.set(
                StepContext(
                    run_id=self.run.run_id,
                    workflow=self.run.workflow,
                    step=step.name,
                    position=position,
                    attempt=number,
                    idempotency_key=key,
                    correlation_id=self.run.correlation_id,
                    inputs=json.loads(inputs),
                )
            )
            try:
                undone = step.compensate(result, *args, **kwargs)
            except Exception as exc:
                facts = extract_facts(
                    exc, step_idempotent=step.idempotent, now_epoch=self.rt.clock().timestamp()
                )
                found = classify(
                    facts, (step.rules, self.workflow.rules, self.rt.rules, DEFAULT_RULES)
                )
                retry = (
                    found.failure_class is FailureClass.TRANSIENT and tries < policy.max_attempts
                )
                failed = AttemptResult(
                    AttemptOutcome.FAILED,
                    found.failure_class,
                    found.rule,
                    "retry" if retry else "fail",
                    "retrying the compensation" if retry else "compensation gave up",
                    error_json(exc, facts),
                )
                self.fenced(
                    partial(
                        store.finish_attempt,
                        self.lease,
                        position=position,
                        kind=AttemptKind.COMPENSATION,
                        attempt=number,
                        result=failed,
                        journal=None,
                        now=self.rt.clock(),
                    )
                )
                if retry:
                    if not self.rt.settings.instant_retries:
                        time.sleep(min(5.0, backoff_delay_s(policy, tries)))
                    continue
                raise StopRun(
                    found.failure_class,
                    f"compensation of step {step.name} failed: {exc}",
                    compensate=False,
                    rule=found.rule,
                    position=position,
                    step=step.name,
                    attempts=tries,
                    error=error_json(exc, facts),
                ) from exc
            finally:
                current_step_var.reset(token)
            self.rt.crash.reached("compensation.before_commit")
            text = json.dumps(undone, default=str) if undone is not None else None
            self.fenced(
                partial(
                    store.commit_compensation,
                    self.lease,
                    position=position,
                    step=step.name,
                    attempt=number,
                    output=text,
                    now=self.rt.clock(),
                )
            )
            return
