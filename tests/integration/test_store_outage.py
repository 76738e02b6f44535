"""A store that stays unavailable past its own retries stops an execution; it never fails
the run. The run resumes from its history once its lease expires."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest

import surefoot as sf
from surefoot.domain.records import (
    AttemptResult,
    DeadLetterFilter,
    JournalEntry,
    Lease,
)
from surefoot.domain.status import AttemptKind
from surefoot.errors import StoreError
from surefoot.store.base import RunEnd, StepCommit
from surefoot.store.sqlite import SQLiteStore


class OutageOnce(SQLiteStore):
    """Fails the first commit of a step result as an exhausted store would."""

    failures_left = 1

    def finish_attempt(
        self,
        lease: Lease,
        *,
        position: int,
        kind: AttemptKind,
        attempt: int,
        result: AttemptResult,
        journal: JournalEntry | None,
        now: Any,
    ) -> None:
        if OutageOnce.failures_left > 0:
            OutageOnce.failures_left -= 1
            raise StoreError("the store stayed unreachable past its retry window")
        super().finish_attempt(
            lease,
            position=position,
            kind=kind,
            attempt=attempt,
            result=result,
            journal=journal,
            now=now,
        )

    def commit_steps(self, lease: Lease, steps: Sequence[StepCommit]) -> None:
        if OutageOnce.failures_left > 0:
            OutageOnce.failures_left -= 1
            raise StoreError("the store stayed unreachable past its retry window")
        super().commit_steps(lease, steps)

    def finish_run(self, lease: Lease, end: RunEnd, now: datetime) -> None:
        # A workflow that returns right after idempotent steps commits their results here.
        if end.steps and OutageOnce.failures_left > 0:
            OutageOnce.failures_left -= 1
            raise StoreError("the store stayed unreachable past its retry window")
        super().finish_run(lease, end, now)


@pytest.mark.parametrize(
    ("record_starts", "outcomes"),
    [
        # The step's start was committed before it ran: the lost commit leaves it interrupted.
        (True, ["interrupted", "succeeded"]),
        # Start and end in one commit: the lost commit leaves nothing; the step runs again.
        (False, ["succeeded"]),
    ],
)
def test_store_outage_during_a_step_commit_never_fails_the_run(
    store_url: str,
    start_worker: Callable[..., sf.Worker],
    record_starts: bool,
    outcomes: list[str],
) -> None:
    OutageOnce.failures_left = 1
    app = sf.App(
        "outage",
        store=OutageOnce(store_url),
        record_idempotent_starts=record_starts,
        instant_retries=True,
        poll_interval_s=0.02,
        lease_s=1.0,
        heartbeat_s=0.2,
    )
    effects: list[str] = []

    @app.step(idempotent=True)
    def charge(order: str) -> str:
        effects.append(sf.current_step().idempotency_key)
        return f"charged {order}"

    @app.workflow
    def checkout(ctx: sf.WorkflowContext, order: str) -> str:
        try:
            return charge(order)
        except Exception:
            return "swallowed"

    start_worker(app)
    handle = app.start(checkout, "o-1")
    assert handle.result(timeout=15) == "charged o-1"
    assert OutageOnce.failures_left == 0
    assert app.store.list_dead_letters(DeadLetterFilter(status=None)) == []
    attempts = app.store.list_attempts(handle.run_id)
    assert [a.outcome.value for a in attempts] == outcomes
    assert len(effects) == 2  # it ran again after the lost commit
    assert len(set(effects)) == 1  # under the same idempotency key


def test_control_the_same_store_error_raised_by_step_code_is_a_failure(
    make_app: Callable[..., sf.App], start_worker: Callable[..., sf.Worker]
) -> None:
    """Negative control: the outage test would pass vacuously if StoreError never reached
    the engine; raised from step code (not from the engine's own store calls) it is an
    ordinary failure, classified and dead-lettered."""
    app = make_app()

    @app.step
    def broken(order: str) -> str:
        raise StoreError("a step's own database failed")

    @app.workflow
    def checkout(ctx: sf.WorkflowContext, order: str) -> str:
        return broken(order)

    start_worker(app)
    handle = app.start(checkout, "o-1")
    with pytest.raises(sf.RunFailedError, match="permanent"):
        handle.result(timeout=10)
