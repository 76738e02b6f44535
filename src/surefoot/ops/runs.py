"""Runs: listing, the timeline of one run, cancel and fork."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from surefoot.domain.ids import time_ordered_hex
from surefoot.domain.records import (
    AttemptRecord,
    JournalEntry,
    NewRun,
    ReviewItem,
    RunFilter,
    RunRecord,
)
from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now
from surefoot.errors import RunNotFoundError, WorkflowError
from surefoot.observability import tracing


def get_run(app: App, run_id: str) -> RunRecord:
    run = app.store.find_run(run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id or idempotency key {run_id!r}")
    return run


def list_runs(app: App, run_filter: RunFilter) -> tuple[list[RunRecord], int]:
    return app.store.list_runs(run_filter), app.store.count_runs(run_filter)


@dataclass(frozen=True)
class Timeline:
    run: RunRecord
    journal: list[JournalEntry]
    attempts: list[AttemptRecord]
    reviews: list[ReviewItem]


def timeline(app: App, run_id: str) -> Timeline:
    run = get_run(app, run_id)
    history = app.store.load_history(run.run_id)
    reviews = [item for items in history.reviews.values() for item in items]
    reviews.sort(key=lambda r: r.created_at)
    return Timeline(
        run, app.store.list_journal(run.run_id), app.store.list_attempts(run.run_id), reviews
    )


def cancel_run(app: App, run_id: str, *, actor: str, reason: str | None) -> RunRecord:
    """Ask the run to stop: at once if it is not executing, at its next step boundary if
    it is. Committed steps with ``compensate=`` hooks are undone, newest first."""
    run = get_run(app, run_id)
    return app.store.request_cancel(run.run_id, actor=actor, reason=reason, now=utc_now())


def fork_run(
    app: App,
    run_id: str,
    *,
    from_position: int,
    inputs: Any = None,
    actor: str,
) -> RunRecord:
    """A new run of the same workflow that reuses the committed results before
    ``from_position`` and executes from there on, optionally with edited inputs."""
    source = get_run(app, run_id)
    if from_position < 1:
        raise WorkflowError("positions start at 1; fork from 1 to re-execute every step")
    definition = app.workflow_named(source.workflow)
    if inputs is None:
        encoded = source.inputs
    elif isinstance(inputs, list):
        encoded = definition.signature.encode_call(inputs, {})
    elif isinstance(inputs, dict):
        encoded = definition.signature.encode_call([], inputs)
    else:
        raise WorkflowError("edited inputs must be a JSON list or object")
    new = NewRun(
        run_id=time_ordered_hex(),
        workflow=source.workflow,
        queue=source.queue,
        inputs=encoded,
        inputs_hash=hashlib.sha256(encoded.encode()).hexdigest(),
        priority=source.priority,
        partition_key=source.partition_key,
        correlation_id=source.correlation_id,
        forked_from_run_id=source.run_id,
        forked_at_position=from_position,
        trace_context=tracing.child_traceparent(source.trace_context),
    )
    return app.store.fork_run(
        source.run_id, at_position=from_position, new=new, actor=actor, now=utc_now()
    )


def steps_to_repeat(app: App, run_id: str, from_position: int) -> list[JournalEntry]:
    """Committed steps at or after ``from_position``: a fork runs them again, as a new
    run, with new idempotency keys. External systems will not recognise them."""
    run = get_run(app, run_id)
    return [
        entry
        for entry in app.store.list_journal(run.run_id)
        if entry.position >= from_position
        and entry.kind.value == "step"
        and entry.status.value == "committed"
    ]


def decode_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def age(at: datetime | None, now: datetime | None = None) -> str:
    if at is None:
        return ""
    seconds = ((now or utc_now()) - at).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
