"""A run's correlation id and trace context are stored with it and reach every audit entry
about it, through failure, redrive and review, and its forks, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import surefoot as sf
from surefoot.domain.audit import AuditEntry
from surefoot.observability import tracing
from surefoot.ops import dead_letter, review, runs


@pytest.fixture
def app(any_store_url: str) -> Iterator[sf.App]:
    made = sf.App("corr", store=any_store_url, instant_retries=True, poll_interval_s=0.02)
    yield made
    made.close()


def _about(entries: list[AuditEntry], run_id: str, item_ids: set[str]) -> list[AuditEntry]:
    return [
        e
        for e in entries
        if e.entity_id == run_id or e.entity_id.startswith(f"{run_id}/") or e.entity_id in item_ids
    ]


def test_every_audit_entry_of_a_redriven_and_reviewed_run_carries_its_correlation_id(
    app: sf.App,
) -> None:
    broken = {"yes": True}

    @app.step
    def book() -> str:
        if broken["yes"]:
            raise sf.PermanentError("ledger closed")
        return "booked"

    @app.workflow
    def booking(ctx: sf.WorkflowContext) -> str:
        booked = book()
        decision = ctx.review("confirm", actions=["approve", "reject"])
        return f"{booked} {decision.action}"

    handle = app.start(booking, correlation_id="corr-audit-7")
    assert tracing.parse_traceparent(handle.record().trace_context) is not None
    with sf.Worker(app):
        with pytest.raises(sf.RunFailedError):
            handle.result(timeout=20)
        broken["yes"] = False
        dead_letter.redrive(app, handle.run_id, actor="ops", reason="ledger reopened")
        app.wake_workers()
        for _ in range(400):
            if handle.status() is sf.RunStatus.NEEDS_REVIEW:
                break
            app.wait_for_change(0.05)
        [item] = [i for i in app.store.list_reviews(None, 10, 0) if i.run_id == handle.run_id]
        assert item.correlation_id == "corr-audit-7"
        review.decide(app, item.item_id, "approve", actor="reviewer")
        app.wake_workers()
        assert handle.result(timeout=20) == "booked approve"

    entries = _about(
        app.store.audit_entries(after_seq=0, limit=1000), handle.run_id, {item.item_id}
    )
    actions = {e.action for e in entries}
    assert {"run.created", "attempt.started", "dead_letter.redriven", "review.created"} <= actions
    missing = [e.action for e in entries if e.correlation_id != "corr-audit-7"]
    assert missing == []

    forked = runs.fork_run(app, handle.run_id, from_position=2, actor="ops")
    assert forked.correlation_id == "corr-audit-7"
    source_trace = tracing.parse_traceparent(handle.record().trace_context)
    forked_trace = tracing.parse_traceparent(forked.trace_context)
    assert source_trace is not None
    assert forked_trace is not None
    assert forked_trace.trace_id == source_trace.trace_id  # the fork joins the run's trace
    assert forked_trace.span_id != source_trace.span_id
