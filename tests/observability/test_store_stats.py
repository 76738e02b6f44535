"""The store queries behind metrics, alert rules and readiness, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

import surefoot as sf
from surefoot.domain.stats import AlertEvent, AlertState
from surefoot.engine.runtime import utc_now


@pytest.fixture
def app(any_store_url: str) -> Iterator[sf.App]:
    made = sf.App("stats", store=any_store_url, instant_retries=True, poll_interval_s=0.02)
    yield made
    made.close()


def test_stats_count_queues_dead_letters_reviews_workers_and_attempts(app: sf.App) -> None:
    @app.workflow(queue="backlog")
    def waiting(ctx: sf.WorkflowContext) -> None:
        return None

    @app.step
    def refuse() -> None:
        raise sf.PermanentError("refused")

    @app.workflow
    def doomed(ctx: sf.WorkflowContext) -> None:
        refuse()

    @app.workflow
    def asks(ctx: sf.WorkflowContext) -> str:
        return ctx.review("approve", sla=timedelta(minutes=5)).action

    started = utc_now()
    app.start(waiting)
    app.start(waiting)
    failing = app.start(doomed)
    asking = app.start(asks)
    with sf.Worker(app, queues=["default"]):
        with pytest.raises(sf.RunFailedError):
            failing.result(timeout=20)
        deadline = utc_now() + timedelta(seconds=20)
        while asking.status() is not sf.RunStatus.NEEDS_REVIEW and utc_now() < deadline:
            app.wait_for_change(0.05)
        beats = app.store.worker_beats()
    store = app.store

    [backlog] = [q for q in store.queue_stats() if q.queue == "backlog"]
    assert backlog.depth == 2
    assert backlog.oldest_created_at is not None
    assert backlog.oldest_created_at >= started

    [dead] = store.dead_letter_stats()
    assert (dead.workflow, dead.failure_class, dead.open) == ("doomed", "permanent", 1)
    assert store.count_dead_letters_since(started) == 1
    assert store.count_dead_letters_since(utc_now() + timedelta(seconds=1)) == 0

    [reviews] = store.review_stats(utc_now())
    assert (reviews.kind, reviews.open, reviews.overdue) == ("approve", 1, 0)
    [late] = store.review_stats(utc_now() + timedelta(minutes=6))
    assert late.overdue == 1

    assert len(beats) == 1
    assert beats[0].stopped_at is None
    assert store.worker_beats()[0].stopped_at is not None  # the worker said it stopped

    counts = {(c.workflow, c.failure_class): c.attempts for c in store.attempt_counts(started)}
    assert counts[("doomed", "permanent")] == 1
    assert store.attempt_counts(utc_now() + timedelta(seconds=1)) == []


def test_an_alert_event_is_recorded_once_per_change_of_state_and_audited(app: sf.App) -> None:
    store = app.store
    now = utc_now()

    def event(state: AlertState, seconds: int) -> AlertEvent:
        return AlertEvent(
            rule="queue-stuck",
            state=state,
            severity="critical",
            summary=f"queue {state.value}",
            at=now + timedelta(seconds=seconds),
            value=42.0,
            threshold=30.0,
        )

    assert store.record_alert_event(event(AlertState.RESOLVED, 0)) is False  # never fired
    assert store.record_alert_event(event(AlertState.FIRING, 1)) is True
    assert store.record_alert_event(event(AlertState.FIRING, 2)) is False  # already firing
    assert [e.state for e in store.alert_states()] == [AlertState.FIRING]
    assert store.record_alert_event(event(AlertState.RESOLVED, 3)) is True

    events = store.alert_events(rule="queue-stuck")
    assert [e.state for e in events] == [AlertState.RESOLVED, AlertState.FIRING]
    assert events[1].value == 42.0
    assert events[1].at == now + timedelta(seconds=1)
    assert store.alert_events(rule="other") == []
    [state] = store.alert_states()
    assert state.state is AlertState.RESOLVED
    audited = [e.action for e in store.audit_entries(after_seq=0, limit=100) if e.entity == "alert"]
    assert audited == ["alert.firing", "alert.resolved"]
