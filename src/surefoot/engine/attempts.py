"""Step attempts: start (committed), run, then commit the result or route the failure.

The attempt's start is committed *before* the step body runs, so a worker that
dies mid-step leaves an attempt the next worker marks ``interrupted``; that
record is what makes an unknown outcome visible instead of silently re-sent.

A step declared idempotent may run again after a crash anyway, so its start
need not be on disk before it runs: its start and its end are committed
together with the run's next write (one commit per step instead of two; both
transitions are still audited): at the next step boundary, before anything else
of the run happens, or with the run's end when the workflow returns next. A
worker that dies before that commit leaves no attempt for it, and the next
execution simply runs it. Where the record of a crash matters, starts
are written first as for any step: for the first step run after a takeover (so a
step that keeps killing workers is seen, counted and routed), when the attempt
fails, and everywhere with ``Settings.record_idempotent_starts``.
Failures are classified (``domain.failures``) and routed (``domain.routes``):
this module only carries out the decision.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from surefoot.domain import codec
from surefoot.domain.breaker import Breaker
from surefoot.domain.failures import DEFAULT_RULES, FailureClass, FailureFacts, classify
from surefoot.domain.ids import time_ordered_hex
from surefoot.domain.reconcile import CannotTell, Found, NotFound, ReconcileOutcome
from surefoot.domain.records import AttemptRecord, AttemptResult, JournalEntry, ReviewItem
from surefoot.domain.routes import Action, Route, decide_route, effective_routes
from surefoot.domain.status import (
    AttemptKind,
    AttemptOutcome,
    JournalKind,
    JournalStatus,
    ReviewStatus,
    RunStatus,
)
from surefoot.engine.admission import AdmissionMixin
from surefoot.engine.context import StepContext, current_step_var
from surefoot.engine.definitions import DEFAULT_STEP_RETRY, StepDef
from surefoot.engine.execution import Done, StopRun
from surefoot.engine.facts import error_json, extract_facts, interrupted_facts
from surefoot.errors import (
    Parked,
    SerializationError,
    StepFailedError,
    StepTimeoutError,
    Suspended,
)
from surefoot.observability import instrument, redaction
from surefoot.store.base import AttemptEnd, StepCommit, Suspension

REVIEW_ACTIONS = {
    "data": ("retry", "skip", "abort"),
    "approval": ("approve", "reject"),
    "ambiguous": ("happened", "retry", "abort"),
}
_ABSENT_DECISION = "reconcile: not found; retrying once"


@dataclass
class Attempt:
    number: int
    position: int
    idempotency_key: str
    inputs: str
    args: list[Any]
    kwargs: dict[str, Any]
    approved: frozenset[str]
    record: AttemptRecord
    unwritten: bool  # the start is not committed yet (written with the end, or on failure)
    ran_s: float = 0.0  # how long the body ran, once it has


class StepMixin(AdmissionMixin):
    # -- the attempt loop, sync and async (one implementation, two thin loops) -----------
    def call_step(self, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        position = self.next_position()
        replayed = self._replay(step, position)
        if replayed is not None:
            return replayed.value
        self.checkpoint(step.name)
        while True:
            plan = self._prepare(step, position, args, kwargs)
            if isinstance(plan, Done):
                return plan.value
            with instrument.attempt(step.name, position, plan.number):
                try:
                    with self._step_scope(step, plan):
                        self.rt.crash.reached("step.attempt_committed")
                        value = _call_sync(step, plan)
                except Exception as exc:  # noqa: BLE001 - every failure is classified and routed
                    outcome = self._after_failure(step, plan, exc)
                    if outcome is not None:
                        return outcome.value
                    continue
                return self._after_success(step, plan, value)

    async def call_step_async(
        self, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        position = self.next_position()
        replayed = self._replay(step, position)
        if replayed is not None:
            return replayed.value
        self.checkpoint(step.name)
        while True:
            plan = self._prepare(step, position, args, kwargs)
            if isinstance(plan, Done):
                return plan.value
            with instrument.attempt(step.name, position, plan.number):
                try:
                    with self._step_scope(step, plan):
                        self.rt.crash.reached("step.attempt_committed")
                        value = await _call_async(step, plan)
                except Exception as exc:  # noqa: BLE001 - every failure is classified and routed
                    outcome = self._after_failure(step, plan, exc)
                    if outcome is not None:
                        return outcome.value
                    continue
                return self._after_success(step, plan, value)

    # -- replay ------------------------------------------------------------------------------
    def _replay(self, step: StepDef, position: int) -> Done | None:
        entry = self.history.journal.get(position)
        if entry is None:
            return None
        self.expect(entry, JournalKind.STEP, step.name)
        if entry.status is JournalStatus.COMMITTED:
            return Done(step.decode_result(entry.output))
        if entry.status is JournalStatus.RAISED:
            raise self.step_failed_from(entry)
        return None

    # -- before an attempt ---------------------------------------------------------------------
    def _prepare(
        self, step: StepDef, position: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Attempt | Done:
        attempts = self.expect_attempts(position, step.name)
        generation = [a for a in attempts if a.generation == self.run.generation]
        last = attempts[-1] if attempts else None
        reviews = [
            r for r in self.history.reviews.get(position, []) if r.generation == self.run.generation
        ]
        review = reviews[-1] if reviews else None
        approved = frozenset(
            json.loads(r.payload or "{}").get("rule", "")
            for r in reviews
            if r.kind == "approval"
            and r.status is ReviewStatus.DECIDED
            and json.loads(r.decision or "{}").get("action") == "approve"
        )
        inputs = (
            generation[-1].inputs
            if generation and generation[-1].inputs
            else step.signature.encode_call(args, kwargs)
        )

        if review is not None and review.status is ReviewStatus.OPEN:
            self.suspend(Suspension(RunStatus.NEEDS_REVIEW, f"review:{review.item_id}"))
            raise Parked(review.item_id)
        pending_decision = (
            review is not None
            and review.status is ReviewStatus.DECIDED
            and review.decided_at is not None
            and (last is None or review.decided_at > last.started_at)
        )
        retry_ends: list[AttemptEnd] = []  # a route committed with the next start
        if pending_decision:
            assert review is not None
            applied = self._apply_decision(step, position, review, generation)
            if isinstance(applied, Done):
                return applied
            if applied is not None:
                inputs = applied
        elif (
            last is not None
            and last.outcome is AttemptOutcome.INTERRUPTED
            and last.failure_class is None
        ):
            facts = interrupted_facts(step_idempotent=step.idempotent)
            # Retried at once, the interrupted attempt's route is committed with the retry's
            # start, when that start is written next: no breaker or rate limit to admit the
            # retry first, and a start written before the body runs.
            joined = (
                step.breaker is None
                and step.rate_limit is None
                and not (step.idempotent and not self.record_starts)
            )
            routed = self._route(
                step,
                position,
                last.attempt,
                facts,
                last.error,
                interrupted=True,
                inputs=last.inputs or inputs,
                retry_ends=retry_ends if joined else None,
            )
            if routed is not None:
                return routed
        self._admit_breaker(step, position)
        self._admit_rate_limit(step)
        number = max((a.attempt for a in attempts), default=0) + 1
        call_args, call_kwargs = step.signature.decode_call(inputs)
        key = self._idempotency_key(position)
        record = AttemptRecord(
            run_id=self.run.run_id,
            position=position,
            kind=AttemptKind.STEP,
            attempt=number,
            generation=self.run.generation,
            step=step.name,
            idempotency_key=key,
            outcome=AttemptOutcome.RUNNING,
            started_at=self.rt.clock(),
            inputs=inputs,
            worker_id=self.lease.worker_id,
        )
        unwritten = step.idempotent and not self.record_starts
        if not unwritten:
            after = retry_ends[0] if retry_ends else None
            self.fenced(lambda: self.rt.store.begin_attempt(self.lease, record, after=after))
        # After a takeover only the first step run live is the one a worker may have died
        # in; later steps leave their starts for their ends again. A later step that kills
        # this worker is the first one run live after the next takeover, so a step that
        # keeps killing workers is recorded from its second kill on, whichever it is.
        self.record_starts = self.rt.settings.record_idempotent_starts
        self.history.attempts.setdefault(position, []).append(record)
        return Attempt(
            number, position, key, inputs, call_args, call_kwargs, approved, record, unwritten
        )

    def _write_start(self, plan: Attempt) -> None:
        """Commit an attempt's start that was left for its end (it is ending otherwise)."""
        if plan.unwritten:
            self.fenced(lambda: self.rt.store.begin_attempt(self.lease, plan.record))
            plan.unwritten = False

    def _apply_decision(
        self, step: StepDef, position: int, review: ReviewItem, generation: list[AttemptRecord]
    ) -> Done | str | None:
        """Carry out a person's decision; returns a value, new inputs, or None (retry)."""
        decision = json.loads(review.decision or "{}")
        action = decision.get("action")
        who = review.decided_by or "a reviewer"
        if action in ("skip", "happened"):
            return self._commit_value(
                step,
                position,
                decision.get("value"),
                f"{action} by {who} (review {review.item_id})",
            )
        if action in ("abort", "reject"):
            cls = (
                FailureClass.POLICY
                if review.kind == "approval"
                else FailureClass(
                    review.kind if review.kind in ("data", "ambiguous") else "permanent"
                )
            )
            raise StopRun(
                cls,
                f"{review.kind} review {review.item_id}: {action} by {who}",
                compensate=True,
                position=position,
                step=step.name,
                attempts=len(generation),
            )
        if action == "retry" and decision.get("inputs") is not None:
            edited = codec.canonical(decision["inputs"])
            step.signature.decode_call(edited)  # validate before the attempt starts
            return edited
        return None

    def _commit_value(self, step: StepDef, position: int, value: Any, why: str) -> Done:
        text, decoded = step.encode_result(value)
        now = self.rt.clock()
        entry = JournalEntry(
            self.run.run_id,
            position,
            JournalKind.STEP,
            step.name,
            JournalStatus.COMMITTED,
            now,
            output=text,
            committed_at=now,
        )
        attempts = self.history.attempts.get(position, [])
        if attempts:
            last = attempts[-1]
            result = AttemptResult(
                last.outcome
                if last.outcome is not AttemptOutcome.RUNNING
                else AttemptOutcome.RECONCILED,
                last.failure_class,
                last.rule,
                last.route,
                why,
                last.error,
            )
            self.fenced(
                lambda: self.rt.store.finish_attempt(
                    self.lease,
                    position=position,
                    kind=AttemptKind.STEP,
                    attempt=last.attempt,
                    result=result,
                    journal=entry,
                    now=now,
                )
            )
        else:
            self.fenced(lambda: self.rt.store.commit_journal(self.lease, entry))
        self.history.journal[position] = entry
        return Done(decoded)

    @contextmanager
    def _step_scope(self, step: StepDef, plan: Attempt) -> Iterator[None]:
        token = current_step_var.set(
            StepContext(
                run_id=self.run.run_id,
                workflow=self.run.workflow,
                step=step.name,
                position=plan.position,
                attempt=plan.number,
                idempotency_key=plan.idempotency_key,
                correlation_id=self.run.correlation_id,
                inputs=json.loads(plan.inputs),
                approved_rules=plan.approved,
            )
        )
        started = time.perf_counter()
        try:
            yield
        finally:
            plan.ran_s = time.perf_counter() - started
            self.rt.quick_steps[step.name] = plan.ran_s < self.rt.settings.quick_step_s
            instrument.step_body_duration(self.run.workflow, step.name, started)
            current_step_var.reset(token)

    # -- after an attempt ------------------------------------------------------------------------
    def _after_success(self, step: StepDef, plan: Attempt, value: Any) -> Any:
        try:
            text, decoded = step.encode_result(value)
        except SerializationError as exc:
            outcome = self._after_failure(step, plan, exc)
            if outcome is None:  # a retry cannot fix a result type; stop here
                raise StopRun(
                    FailureClass.PERMANENT,
                    str(exc),
                    compensate=True,
                    position=plan.position,
                    step=step.name,
                ) from exc
            return outcome.value
        self.rt.crash.reached("step.before_commit")
        now = self.rt.clock()
        entry = JournalEntry(
            self.run.run_id,
            plan.position,
            JournalKind.STEP,
            step.name,
            JournalStatus.COMMITTED,
            now,
            output=text,
            committed_at=now,
        )
        # An idempotent step whose start was not written may run again by declaration, so
        # its end is held for the run's next write (see ``checkpoint``): a quick one's
        # may wait while steps known to be quick run, any other's commits before the
        # next step or wait begins. Nothing outside the workflow's own code and those
        # quick idempotent steps sees the result before that commit. A step whose start
        # is on disk would come back from a crash as ambiguous instead: its end (and any
        # held before it) is committed at once.
        written, plan.unwritten = not plan.unwritten, False
        commit = StepCommit(
            plan.record,
            start_written=written,
            result=AttemptResult(AttemptOutcome.SUCCEEDED),
            journal=entry,
            at=now,
        )
        self.hold(commit, quick=plan.ran_s < self.rt.settings.quick_step_s)
        if written:
            self.settle()
        self.history.journal[plan.position] = entry
        self._mark_finished(plan.position, AttemptOutcome.SUCCEEDED)
        instrument.attempt_succeeded(self.run.workflow, step.name)
        if step.breaker is not None:
            key = step.breaker
            self.fenced(lambda: self.rt.store.update_breaker(key, _close, now))
        return decoded

    def _after_failure(self, step: StepDef, plan: Attempt, exc: BaseException) -> Done | None:
        self._write_start(plan)  # a failed attempt is routed from its stored record
        facts = extract_facts(
            exc, step_idempotent=step.idempotent, now_epoch=self.rt.clock().timestamp()
        )
        return self._route(
            step,
            plan.position,
            plan.number,
            facts,
            error_json(exc, facts),
            interrupted=False,
            inputs=plan.inputs,
            exc=exc,
        )

    def _mark_finished(self, position: int, outcome: AttemptOutcome, **changes: Any) -> None:
        attempts = self.history.attempts.get(position, [])
        if attempts:
            # The record's fields with these changed: what dataclasses.replace builds, at a
            # third of its cost (it looks the fields up again on every call).
            attempts[-1] = AttemptRecord(**{**vars(attempts[-1]), "outcome": outcome, **changes})

    # -- routing -----------------------------------------------------------------------------------
    def _route(
        self,
        step: StepDef,
        position: int,
        attempt: int,
        facts: FailureFacts,
        error: str | None,
        *,
        interrupted: bool,
        inputs: str,
        exc: BaseException | None = None,
        retry_ends: list[AttemptEnd] | None = None,
    ) -> Done | None:
        """Classify, decide and carry out. Returns a value, None to retry now, or raises.

        With ``retry_ends``, a retry at once leaves the attempt's end there instead of
        committing it: the caller commits it with the retry's start."""
        rules = (step.rules, self.workflow.rules, self.rt.rules, DEFAULT_RULES)
        classification = classify(facts, rules)
        cls = classification.failure_class
        route = effective_routes(self.rt.routes, self.workflow.routes, step.routes)[cls]
        if cls is FailureClass.AMBIGUOUS and step.idempotent and route is Route.RECONCILE:
            cls, route = FailureClass.TRANSIENT, Route.RETRY  # idempotent: simply retried
        policy = step.retry or self.workflow.retry or DEFAULT_STEP_RETRY
        generation = [
            a
            for a in self.history.attempts.get(position, [])
            if a.generation == self.run.generation
        ]
        now = self.rt.clock()
        elapsed = (now - generation[0].started_at).total_seconds() if generation else 0.0
        decision = decide_route(
            cls,
            route,
            policy=policy,
            attempts_made=len(generation),
            elapsed_s=elapsed,
            retry_after_s=facts.retry_after_s,
            instant=self.rt.settings.instant_retries
            or (interrupted and _interruptions_in_a_row(generation) == 1),
        )
        outcome = AttemptOutcome.INTERRUPTED if interrupted else AttemptOutcome.FAILED
        result = AttemptResult(
            outcome,
            classification.failure_class,
            classification.rule,
            decision.route.value,
            decision.reason,
            error,
        )
        instrument.attempt_failed(
            self.run.workflow,
            step.name,
            attempt,
            failure_class=classification.failure_class.value,
            rule=classification.rule,
            route=decision.route.value,
            decision=decision.reason,
            error_type=facts.error_type,
            message=facts.message,
            interrupted=interrupted,
        )
        if step.breaker is not None:
            key, policy_now = step.breaker, self.breaker_policy
            if cls is FailureClass.TRANSIENT:
                self.fenced(
                    lambda: self.rt.store.update_breaker(
                        key, lambda b: (b.on_transient_failure(now, policy_now), None), now
                    )
                )
            else:  # the dependency answered; only transient failures open a breaker
                self.fenced(lambda: self.rt.store.update_breaker(key, _close, now))
        stop_args: dict[str, Any] = {
            "rule": classification.rule,
            "position": position,
            "step": step.name,
            "attempts": len(generation),
            "error": error,
        }
        action = decision.action

        if action is Action.RECONCILE:
            return self._reconcile(step, position, attempt, result, inputs, generation)
        if action is Action.RETRY_LATER:
            self.suspend(
                Suspension(
                    RunStatus.WAITING,
                    f"retry:{step.name}",
                    wake_at=now + timedelta(seconds=decision.delay_s),
                    attempt=(position, AttemptKind.STEP, attempt, result),
                )
            )
            self._mark_finished(position, outcome, failure_class=cls)
            raise Suspended(self.run.run_id)
        if action in (Action.REVIEW, Action.APPROVAL):
            kind = "approval" if action is Action.APPROVAL else "data"
            self._park(step, position, attempt, result, kind, inputs, facts, error)
        journal = None
        if action is Action.RAISE:
            failed = {"failure_class": cls.value, **json.loads(error or "{}")}
            journal = JournalEntry(
                self.run.run_id,
                position,
                JournalKind.STEP,
                step.name,
                JournalStatus.RAISED,
                now,
                error=codec.canonical(failed),
                committed_at=now,
            )
        if action is Action.RETRY_NOW and retry_ends is not None:
            retry_ends.append(AttemptEnd(position, AttemptKind.STEP, attempt, result, now))
        else:
            self.fenced(
                lambda: self.rt.store.finish_attempt(
                    self.lease,
                    position=position,
                    kind=AttemptKind.STEP,
                    attempt=attempt,
                    result=result,
                    journal=journal,
                    now=now,
                )
            )
        self._mark_finished(position, outcome, failure_class=cls)
        if action is Action.RETRY_NOW:
            return None
        if action is Action.RAISE:
            assert journal is not None
            self.history.journal[position] = journal
            raise StepFailedError(
                facts.message or facts.error_type,
                step=step.name,
                failure_class=cls.value,
                error_type=facts.error_type,
            ) from exc
        reason = f"step {step.name}: {decision.reason}"
        if facts.message:
            message = redaction.active().text(facts.message)[:200]
            reason += f" ({facts.error_type.rsplit('.', 1)[-1]}: {message})"
        raise StopRun(cls, reason, compensate=action is Action.FAIL, **stop_args)

    def _park(
        self,
        step: StepDef,
        position: int,
        attempt: int,
        result: AttemptResult,
        kind: str,
        inputs: str,
        facts: FailureFacts,
        error: str | None,
    ) -> None:
        now = self.rt.clock()
        payload: dict[str, Any] = {
            "step": step.name,
            "inputs": json.loads(inputs),
            "failure_class": result.failure_class.value if result.failure_class else None,
            "rule": facts.rule_hint or result.rule,
            "message": facts.message,
            "error": json.loads(error) if error else None,
        }
        title = (
            f"Approve {facts.rule_hint or 'policy'} for {step.name}"
            if kind == "approval"
            else f"{kind.capitalize()} problem in {step.name}"
        )
        item = ReviewItem(
            item_id=time_ordered_hex(),
            run_id=self.run.run_id,
            position=position,
            generation=self.run.generation,
            kind=kind,
            title=title,
            actions=REVIEW_ACTIONS[kind],
            status=ReviewStatus.OPEN,
            created_at=now,
            payload=codec.canonical(payload),
            correlation_id=self.run.correlation_id,
        )
        self.suspend(
            Suspension(
                RunStatus.NEEDS_REVIEW,
                f"review:{item.item_id}",
                review=item,
                attempt=(position, AttemptKind.STEP, attempt, result),
            )
        )
        self.record_review(item)
        raise Parked(item.item_id)

    def _reconcile(
        self,
        step: StepDef,
        position: int,
        attempt: int,
        result: AttemptResult,
        inputs: str,
        generation: list[AttemptRecord],
    ) -> Done | None:
        outcome = self._ask_reconcile(step, position, attempt, inputs)
        now = self.rt.clock()
        if isinstance(outcome, Found):
            text, decoded = step.encode_result(outcome.value)
            entry = JournalEntry(
                self.run.run_id,
                position,
                JournalKind.STEP,
                step.name,
                JournalStatus.COMMITTED,
                now,
                output=text,
                committed_at=now,
            )
            found = AttemptResult(
                AttemptOutcome.RECONCILED,
                result.failure_class,
                result.rule,
                result.route,
                "reconcile: effect found; result recorded",
                result.error,
            )
            self.fenced(
                lambda: self.rt.store.finish_attempt(
                    self.lease,
                    position=position,
                    kind=AttemptKind.STEP,
                    attempt=attempt,
                    result=found,
                    journal=entry,
                    now=now,
                )
            )
            self.history.journal[position] = entry
            self._mark_finished(position, AttemptOutcome.RECONCILED)
            return Done(decoded)
        retried_once = any(a.decision == _ABSENT_DECISION for a in generation)
        if isinstance(outcome, NotFound) and not retried_once:
            absent = AttemptResult(
                result.outcome,
                result.failure_class,
                result.rule,
                result.route,
                _ABSENT_DECISION,
                result.error,
            )
            self.fenced(
                lambda: self.rt.store.finish_attempt(
                    self.lease,
                    position=position,
                    kind=AttemptKind.STEP,
                    attempt=attempt,
                    result=absent,
                    now=now,
                    journal=None,
                )
            )
            self._mark_finished(
                position,
                result.outcome,
                decision=_ABSENT_DECISION,
                failure_class=result.failure_class,
            )
            return None
        why = (
            outcome.reason
            if isinstance(outcome, CannotTell)
            else "the effect was not found after one safe retry"
        )
        asked = AttemptResult(
            result.outcome,
            result.failure_class,
            result.rule,
            Route.REVIEW.value,
            f"reconcile: {why}; asking a person",
            result.error,
        )
        facts = interrupted_facts(step_idempotent=step.idempotent)
        self._park(step, position, attempt, asked, "ambiguous", inputs, facts, result.error)
        return None  # unreachable: _park raises

    def _ask_reconcile(
        self, step: StepDef, position: int, attempt: int, inputs: str
    ) -> ReconcileOutcome:
        if step.reconcile is None:
            return CannotTell(f"step {step.name} has no reconcile hook")
        key = self._idempotency_key(position)
        context = StepContext(
            run_id=self.run.run_id,
            workflow=self.run.workflow,
            step=step.name,
            position=position,
            attempt=attempt,
            idempotency_key=key,
            correlation_id=self.run.correlation_id,
            inputs=json.loads(inputs),
        )
        try:
            answer = step.reconcile(context, key)
        except Exception as exc:  # noqa: BLE001 - a failing lookup cannot tell
            return CannotTell(f"the reconcile hook failed: {type(exc).__name__}: {exc}")
        if isinstance(answer, Found | NotFound | CannotTell):
            return answer
        return CannotTell(f"the reconcile hook returned {answer!r}, not Found/NotFound/CannotTell")


def _close(breaker: Breaker) -> tuple[Breaker, None]:
    return breaker.on_success(), None


def _call_sync(step: StepDef, plan: Attempt) -> Any:
    if step.is_async:
        return asyncio.run(_call_async(step, plan))
    if step.timeout_s is None:
        return step.fn(*plan.args, **plan.kwargs)
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(step.fn, *plan.args, **plan.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"step-{step.name}", daemon=True)
    thread.start()
    thread.join(step.timeout_s)
    if thread.is_alive():
        raise StepTimeoutError(
            f"step {step.name} ran longer than {step.timeout_s:g}s; "
            "it may still finish in the background"
        )
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def _call_async(step: StepDef, plan: Attempt) -> Any:
    call = step.fn(*plan.args, **plan.kwargs)
    if step.timeout_s is None:
        return await call
    try:
        return await asyncio.wait_for(call, step.timeout_s)
    except TimeoutError:
        raise StepTimeoutError(f"step {step.name} ran longer than {step.timeout_s:g}s") from None


def _interruptions_in_a_row(generation: list[AttemptRecord]) -> int:
    """How many of the last attempts were interrupted. A worker that died is not a sign that
    the step's dependency is failing: the first retry after it runs at once; a step that
    keeps killing its workers backs off like any other failure."""
    count = 0
    for attempt in reversed(generation):
        if attempt.outcome is not AttemptOutcome.INTERRUPTED:
            break
        count += 1
    return count
