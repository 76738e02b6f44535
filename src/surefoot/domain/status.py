"""Stored statuses and the transitions between them.

The enum values are exactly what the store holds. ``RUN_TRANSITIONS`` is the
whole life cycle of a run; the engine and the operator functions check every
change against it, so an impossible transition is a bug caught at once rather
than a row in a strange state.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"  # ready for a worker to claim
    RUNNING = "running"  # leased by a worker
    WAITING = "waiting"  # durable wait: sleep, event, retry backoff, open breaker
    NEEDS_REVIEW = "needs_review"  # parked until a person decides a review item
    COMPENSATING = "compensating"  # undoing committed steps after a failure
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # see the dead-letter entry for class and reason
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})

_S = RunStatus
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.CANCELLED}),
    _S.RUNNING: frozenset(
        {
            _S.PENDING,
            _S.RUNNING,
            _S.WAITING,
            _S.NEEDS_REVIEW,
            _S.COMPENSATING,
            _S.SUCCEEDED,
            _S.FAILED,
            _S.CANCELLED,
        }
    ),
    _S.WAITING: frozenset({_S.RUNNING, _S.CANCELLED}),
    _S.NEEDS_REVIEW: frozenset({_S.PENDING, _S.CANCELLED, _S.COMPENSATING, _S.FAILED}),
    _S.COMPENSATING: frozenset({_S.RUNNING}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset({_S.PENDING}),  # redrive
    _S.CANCELLED: frozenset(),
}


def can_transition(old: RunStatus, new: RunStatus) -> bool:
    return new in RUN_TRANSITIONS[old]


class AttemptOutcome(StrEnum):
    RUNNING = "running"  # started, not finished (yet)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the worker died or lost its lease mid-attempt
    RECONCILED = "reconciled"  # the reconcile hook found the effect


class AttemptKind(StrEnum):
    STEP = "step"
    COMPENSATION = "compensation"


class JournalKind(StrEnum):
    """What sits at a position of a run's history."""

    STEP = "step"
    SLEEP = "sleep"
    WAIT = "wait"
    REVIEW = "review"


class JournalStatus(StrEnum):
    PENDING = "pending"  # a wait or review not yet satisfied
    COMMITTED = "committed"  # the result is final; replay returns it
    RAISED = "raised"  # a failure delivered to workflow code; replay raises it


class ReviewStatus(StrEnum):
    OPEN = "open"
    DECIDED = "decided"
    CANCELLED = "cancelled"


class DeadLetterStatus(StrEnum):
    OPEN = "open"
    REDRIVEN = "redriven"
    DISCARDED = "discarded"
