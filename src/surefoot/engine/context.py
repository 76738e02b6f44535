"""What workflow and step code can see: the workflow context and the step context."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from surefoot.errors import PolicyViolation, StepOutsideWorkflowError, WorkflowError

if TYPE_CHECKING:
    from surefoot.engine.runner import Execution


@dataclass(frozen=True)
class StepContext:
    """The attempt in progress. ``idempotency_key`` is the same for every attempt of a
    step; hand it to the external system so that a repeated request is recognised."""

    run_id: str
    workflow: str
    step: str
    position: int
    attempt: int
    idempotency_key: str
    correlation_id: str | None
    inputs: dict[str, Any] = field(default_factory=dict)
    approved_rules: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    """A person's decision on a review item, as ``ctx.review`` returns it."""

    action: str
    value: Any = None
    decided_by: str | None = None
    comment: str | None = None
    item_id: str | None = None


current_execution_var: ContextVar[Execution | None] = ContextVar("surefoot_execution", default=None)
current_step_var: ContextVar[StepContext | None] = ContextVar("surefoot_step", default=None)


def current_execution(step_name: str) -> Execution:
    outer = current_step_var.get()
    if outer is not None:
        raise WorkflowError(
            f"step {step_name} was called inside step {outer.step}; steps do not nest. "
            "Call both from the workflow, or make the inner one a plain function."
        )
    execution = current_execution_var.get()
    if execution is None:
        raise StepOutsideWorkflowError(
            f"step {step_name} was called outside a workflow; steps run inside a workflow "
            "started with app.start(...). In tests, call the undecorated function via "
            f"{step_name.rsplit('.', 1)[-1]}.__wrapped__"
        )
    return execution


def current_step() -> StepContext:
    """The step attempt in progress (its idempotency key, attempt number, run id)."""
    step = current_step_var.get()
    if step is None:
        raise StepOutsideWorkflowError("current_step() is only available inside a step")
    return step


def require_approval(rule: str, *, when: bool = True, message: str | None = None) -> None:
    """Inside a step: stop for approval of ``rule`` when ``when`` holds, unless a person
    has already approved it for this step. Raises :class:`PolicyViolation`."""
    step = current_step()
    if when and rule not in step.approved_rules:
        raise PolicyViolation(message or f"approval required: {rule}", rule=rule)


class WorkflowContext:
    """Handed to every workflow as its first argument. Durable waits never block:
    they return at once, or unwind the run, which resumes later on any worker."""

    def __init__(self, execution: Execution) -> None:
        self._execution = execution

    @property
    def run_id(self) -> str:
        return self._execution.run.run_id

    @property
    def workflow(self) -> str:
        return self._execution.run.workflow

    @property
    def correlation_id(self) -> str | None:
        return self._execution.run.correlation_id

    @property
    def idempotency_key(self) -> str | None:
        return self._execution.run.idempotency_key

    def sleep(self, duration: float | timedelta) -> None:
        """Sleep durably: the run holds no thread or memory until it wakes."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        self._execution.sleep(seconds)

    def wait_for(self, name: str, *, timeout_s: float | None = None) -> Any:
        """Wait durably for ``app.send_event(run, name, payload)``; returns the payload.

        Events sent before the wait are kept and delivered in order. Raises
        ``WaitTimeoutError`` (the same on every replay) when the timeout passes.
        """
        return self._execution.wait_for(name, timeout_s)

    def review(
        self,
        kind: str,
        *,
        payload: Any = None,
        actions: Sequence[str] = ("approve", "reject"),
        title: str | None = None,
        assignee_role: str | None = None,
        priority: int = 0,
        sla: timedelta | None = None,
    ) -> Decision:
        """Ask a person; the run waits durably and resumes with their :class:`Decision`."""
        return self._execution.review(
            kind,
            payload=payload,
            actions=tuple(actions),
            title=title,
            assignee_role=assignee_role,
            priority=priority,
            sla=sla,
        )
