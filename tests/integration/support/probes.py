"""Reading what the store recorded: runs, attempts, reviews, dead letters, audit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import surefoot as sf
from surefoot.domain.records import AttemptRecord, DeadLetter, ReviewItem, RunRecord
from surefoot.domain.status import AttemptKind
from surefoot.ops import audit as audit_ops
from surefoot.ops import review as review_ops

WAIT_S = 10.0


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.02)


def wait_for_status(
    app: sf.App, run_id: str, status: sf.RunStatus, timeout_s: float = WAIT_S
) -> RunRecord:
    """The run once it has reached ``status`` (fails with the status it is stuck in)."""
    seen: list[RunRecord] = []

    def reached() -> bool:
        run = app.store.get_run(run_id)
        assert run is not None, f"no run {run_id}"
        seen.append(run)
        return run.status is status

    try:
        wait_until(reached, f"run {run_id} to be {status}", timeout_s)
    except AssertionError as exc:
        last = seen[-1]
        raise AssertionError(f"{exc}; it is {last.status} ({last.error})") from None
    return seen[-1]


def step_attempts(app: sf.App, run_id: str, step: str | None = None) -> list[AttemptRecord]:
    """Step attempts of a run in the order they started."""
    return [
        a
        for a in app.store.list_attempts(run_id)
        if a.kind is AttemptKind.STEP and step in (None, a.step)
    ]


def compensation_attempts(app: sf.App, run_id: str) -> list[AttemptRecord]:
    return [a for a in app.store.list_attempts(run_id) if a.kind is AttemptKind.COMPENSATION]


def open_reviews(app: sf.App, run_id: str) -> list[ReviewItem]:
    return [item for item in review_ops.list_reviews(app, limit=500) if item.run_id == run_id]


def parked_review(app: sf.App, run_id: str, timeout_s: float = WAIT_S) -> ReviewItem:
    """The one open review item of a run parked for a person."""
    wait_for_status(app, run_id, sf.RunStatus.NEEDS_REVIEW, timeout_s)
    items = open_reviews(app, run_id)
    assert len(items) == 1, f"expected one open review item, found {items}"
    return items[0]


def dead_letter(app: sf.App, run_id: str) -> DeadLetter:
    found = app.store.get_dead_letter(run_id)
    assert found is not None, f"run {run_id} has no dead-letter entry"
    return found


def audit_actions(app: sf.App, entity_id: str | None = None) -> list[tuple[str, str, Any]]:
    """(action, actor, reason) of every audit entry, optionally of one entity."""
    return [(e.action, e.actor, e.reason) for e in audit_ops.entries(app, entity_id=entity_id)]
