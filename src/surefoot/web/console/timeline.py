"""A run's timeline as rows: every step attempt (with class, rule, route, decision, key and
error) and every journal entry that had no attempt (waits, reviews, steps reused by a fork)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from surefoot.ops.runs import Timeline


@dataclass(frozen=True)
class TimelineRow:
    position: int
    what: str  # the step or wait name
    kind: str  # step, compensation, sleep, wait, review
    attempt: int | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    failure_class: str = ""
    rule: str = ""
    route: str = ""
    decision: str = ""
    idempotency_key: str = ""
    error: str | None = None
    note: str = ""

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def timeline_rows(view: Timeline) -> list[TimelineRow]:
    rows: list[tuple[tuple[int, int, int], TimelineRow]] = []
    attempted: set[int] = set()
    for attempt in view.attempts:
        attempted.add(attempt.position)
        undo = attempt.kind.value != "step"
        rows.append(
            (
                (attempt.position, int(undo), attempt.attempt),
                TimelineRow(
                    position=attempt.position,
                    what=attempt.step,
                    kind=attempt.kind.value,
                    attempt=attempt.attempt,
                    started_at=attempt.started_at,
                    finished_at=attempt.finished_at,
                    outcome=attempt.outcome.value,
                    failure_class=attempt.failure_class.value if attempt.failure_class else "",
                    rule=attempt.rule or "",
                    route=attempt.route or "",
                    decision=attempt.decision or "",
                    idempotency_key=attempt.idempotency_key,
                    error=attempt.error,
                    note=f"generation {attempt.generation}" if attempt.generation else "",
                ),
            )
        )
    for entry in view.journal:
        if entry.position in attempted:
            continue
        note = ""
        if entry.wake_at is not None:
            note = f"until {entry.wake_at:%H:%M:%SZ}"
        if entry.kind.value == "step" and view.run.forked_from_run_id:
            note = "reused from the forked run"
        rows.append(
            (
                (entry.position, 0, 0),
                TimelineRow(
                    position=entry.position,
                    what=entry.name,
                    kind=entry.kind.value,
                    attempt=None,
                    started_at=entry.created_at,
                    finished_at=entry.committed_at,
                    outcome=entry.status.value,
                    error=entry.error,
                    note=note,
                ),
            )
        )
    return [row for _key, row in sorted(rows, key=lambda pair: pair[0])]
