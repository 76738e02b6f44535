"""The numbers the console shows: counts by status, what needs attention, queue depths.

Computed from store reads on every page view (no cache): the console must not show a
calmer picture than the store holds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from surefoot.domain.breaker import Breaker, BreakerState
from surefoot.domain.records import DeadLetter, DeadLetterFilter, ReviewItem, RunFilter, RunRecord
from surefoot.domain.status import ReviewStatus, RunStatus
from surefoot.engine.app import App
from surefoot.web.console.states import run_state

SCAN_LIMIT = 2000  # rows read per status when a view filters beyond what the store can


@dataclass(frozen=True)
class AttentionRow:
    why: str  # a key of states.ATTENTION_LABELS
    run: RunRecord
    dead_letter: DeadLetter | None = None


@dataclass
class Overview:
    by_status: dict[str, int]
    attention: Counter[str]
    dead_letter_depth: int
    dead_letter_capped: bool
    open_reviews: int
    oldest_review: ReviewItem | None
    overdue_reviews: int
    breakers: list[Breaker]
    failures_by_class: Counter[str]
    recent_dead_letters: list[DeadLetter] = field(default_factory=list)
    last_hour: dict[str, int] = field(default_factory=dict)  # runs created in the last hour
    oldest_pending: RunRecord | None = None  # the run waiting longest for a worker

    @property
    def open_breakers(self) -> list[Breaker]:
        return [b for b in self.breakers if b.state is not BreakerState.CLOSED]


def attention_rows(app: App, now: datetime) -> tuple[list[AttentionRow], bool]:
    """Every run that needs a person or is not progressing, newest change first.

    Returns the rows and whether a scan hit ``SCAN_LIMIT`` (the list is then partial).
    """
    capped = False
    rows: list[AttentionRow] = []
    for status in (
        RunStatus.NEEDS_REVIEW,
        RunStatus.COMPENSATING,
        RunStatus.WAITING,
        RunStatus.RUNNING,
    ):
        found = app.store.list_runs(RunFilter(status=(status,), limit=SCAN_LIMIT))
        capped = capped or len(found) >= SCAN_LIMIT
        for run in found:
            why = run_state(run, now).attention
            if why is not None:
                rows.append(AttentionRow(why, run))
    dead = app.store.list_dead_letters(DeadLetterFilter(limit=SCAN_LIMIT))
    capped = capped or len(dead) >= SCAN_LIMIT
    for entry in dead:
        failed = app.store.get_run(entry.run_id)
        if failed is not None and failed.status is RunStatus.FAILED:
            rows.append(AttentionRow("failed", failed, entry))
    rows.sort(key=lambda row: row.run.updated_at, reverse=True)
    return rows, capped


def overview(app: App, now: datetime) -> Overview:
    by_status = {
        status.value: app.store.count_runs(RunFilter(status=(status,))) for status in RunStatus
    }
    rows, _capped = attention_rows(app, now)
    dead = app.store.list_dead_letters(DeadLetterFilter(limit=SCAN_LIMIT))
    reviews = app.store.list_reviews(ReviewStatus.OPEN, SCAN_LIMIT, 0)
    recent = app.store.list_dead_letters(
        DeadLetterFilter(after=now - timedelta(hours=24), status=None, limit=SCAN_LIMIT)
    )
    hour_ago = now - timedelta(hours=1)
    last_hour = {
        "started": app.store.count_runs(RunFilter(created_after=hour_ago)),
        **{
            status.value: app.store.count_runs(RunFilter(status=(status,), created_after=hour_ago))
            for status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
        },
    }
    pending = by_status[RunStatus.PENDING.value]
    oldest = (
        app.store.list_runs(RunFilter(status=(RunStatus.PENDING,), limit=1, offset=pending - 1))
        if pending
        else []
    )
    return Overview(
        last_hour=last_hour,
        oldest_pending=oldest[0] if oldest else None,
        by_status=by_status,
        attention=Counter(row.why for row in rows),
        dead_letter_depth=len(dead),
        dead_letter_capped=len(dead) >= SCAN_LIMIT,
        open_reviews=len(reviews),
        oldest_review=min(reviews, key=lambda r: r.created_at) if reviews else None,
        overdue_reviews=sum(1 for r in reviews if r.due_at is not None and r.due_at < now),
        breakers=app.store.get_breakers(),
        failures_by_class=Counter(d.failure_class.value for d in recent),
        recent_dead_letters=sorted(recent, key=lambda d: d.dead_lettered_at, reverse=True)[:8],
    )
