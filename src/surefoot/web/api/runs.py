"""Runs: list with filters, the timeline of one, start, events, cancel, fork."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import Field

from surefoot.domain.access import Permission as Perm
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import RunFilter
from surefoot.domain.status import RunStatus
from surefoot.engine.starts import MAX_START_MANY, Start
from surefoot.observability import tracing
from surefoot.ops import runs
from surefoot.web.api.common import (
    ApiRoute,
    Caller,
    Limit,
    Offset,
    Surefoot,
    requires,
)
from surefoot.web.api.fields import JsonInt, Priority, Strict, Timestamp
from surefoot.web.api.models import Page, Run, RunTimeline, Step

router = APIRouter(prefix="/runs", tags=["runs"], route_class=ApiRoute)


class StartRun(Strict):
    workflow: str
    input: dict[str, Any] | list[Any] | None = None
    idempotency_key: str | None = None
    queue: str | None = None
    priority: JsonInt = Field(0, ge=-(2**31), le=2**31, description="Higher runs first.")
    partition_key: str | None = None


class BatchItem(Strict):
    input: dict[str, Any] | list[Any] | None = None
    idempotency_key: str | None = None
    partition_key: str | None = None
    priority: Priority | None = Field(None, description="This run's; the batch's when omitted.")


class StartBatch(Strict):
    workflow: str
    runs: list[BatchItem] = Field(min_length=1, max_length=MAX_START_MANY)
    queue: str | None = None
    priority: JsonInt = Field(0, ge=-(2**31), le=2**31, description="Higher runs first.")


class BatchStarted(Strict):
    runs: list[Run]
    created: list[bool] = Field(description="Per run: false when its idempotency key named a run.")


class SendEvent(Strict):
    name: str
    payload: Any = None
    event_key: str | None = None


class EventAccepted(Strict):
    run_id: str
    name: str


class Cancel(Strict):
    reason: str | None = None


class Fork(Strict):
    from_position: JsonInt = Field(ge=1, le=2**31, description="First position to execute again.")
    input: dict[str, Any] | list[Any] | None = None


@router.get("", response_model=Page[Run], **requires(Perm.READ))
def list_runs(
    app: Surefoot,
    limit: Limit = 50,
    offset: Offset = 0,
    status_: Annotated[list[RunStatus] | None, Query(alias="status")] = None,
    workflow: str | None = None,
    queue: str | None = None,
    failure_class: FailureClass | None = None,
    correlation_id: str | None = None,
    created_after: Timestamp | None = None,
    created_before: Timestamp | None = None,
) -> Page[Run]:
    """Runs, newest first. ``failure_class``: runs whose dead-letter entry or latest
    failed attempt has that class."""
    run_filter = RunFilter(
        status=tuple(status_ or ()),
        workflow=workflow,
        queue=queue,
        correlation_id=correlation_id,
        failure_class=failure_class,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        offset=offset,
    )
    found, total = runs.list_runs(app, run_filter)
    return Page[Run](items=[Run.of(r) for r in found], total=total, limit=limit, offset=offset)


@router.post(
    "",
    response_model=Run,
    status_code=status.HTTP_201_CREATED,
    **requires(
        Perm.START_RUN,
        {200: {"model": Run, "description": "The idempotency key named an existing run."}},
    ),
)
def start_run(
    body: StartRun, request: Request, response: Response, app: Surefoot, caller: Caller
) -> Run:
    """Commit a new run (201), or return the run its idempotency key already names
    (200). The correlation id comes from ``X-Correlation-ID`` or ``traceparent``."""
    existed = body.idempotency_key is not None and _names_a_run(app, body.idempotency_key)
    with tracing.ingress(request.headers):
        handle = app.start_json(
            body.workflow,
            body.input,
            idempotency_key=body.idempotency_key,
            queue=body.queue,
            priority=body.priority,
            partition_key=body.partition_key,
            correlation_id=tracing.correlation_id_from_headers(request.headers),
            actor=caller.name,
        )
    if existed:
        response.status_code = status.HTTP_200_OK
    return Run.of(runs.get_run(app, handle.run_id))


@router.post(
    "/batch",
    response_model=BatchStarted,
    status_code=status.HTTP_201_CREATED,
    **requires(
        Perm.START_RUN,
        {200: {"model": BatchStarted, "description": "Every key named an existing run."}},
    ),
)
def start_batch(
    body: StartBatch, request: Request, response: Response, app: Surefoot, caller: Caller
) -> BatchStarted:
    """Commit many runs of one workflow in one transaction, all or none (``start_many``):
    201 when any run was created, 200 when every idempotency key named an existing run.
    The runs share the request's correlation id."""
    starts = [
        Start(
            args=item.input if isinstance(item.input, list) else (),
            kwargs=item.input if isinstance(item.input, dict) else {},
            idempotency_key=item.idempotency_key,
            partition_key=item.partition_key,
            priority=item.priority,
        )
        for item in body.runs
    ]
    with tracing.ingress(request.headers):
        made = app.start_many_records(
            body.workflow,
            starts,
            queue=body.queue,
            priority=body.priority,
            correlation_id=tracing.correlation_id_from_headers(request.headers),
            actor=caller.name,
        )
    if not any(created for _, created in made):
        response.status_code = status.HTTP_200_OK
    return BatchStarted(
        runs=[Run.of(record) for record, _ in made], created=[created for _, created in made]
    )


def _names_a_run(app: Surefoot, key: str) -> bool:
    found = app.store.find_run(key)
    return found is not None and found.idempotency_key == key


@router.get("/{run_id}", response_model=RunTimeline, **requires(Perm.READ))
def show_run(run_id: str, app: Surefoot) -> RunTimeline:
    """A run (by id or idempotency key) with its full timeline: steps, every attempt with
    its class, rule, route and error, and its review items."""
    return RunTimeline.of(runs.timeline(app, run_id))


@router.post(
    "/{run_id}/events",
    response_model=EventAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    **requires(Perm.SEND_EVENT),
)
def send_event(run_id: str, body: SendEvent, app: Surefoot, caller: Caller) -> EventAccepted:
    """Deliver an event to ``ctx.wait_for``; committed before the answer. A repeated
    ``event_key`` is stored once."""
    app.send_event(run_id, body.name, body.payload, event_key=body.event_key, actor=caller.name)
    return EventAccepted(run_id=run_id, name=body.name)


@router.post("/{run_id}/cancel", response_model=Run, **requires(Perm.CANCEL_RUN))
def cancel_run(run_id: str, body: Cancel, app: Surefoot, caller: Caller) -> Run:
    """Cancel: at once if not executing, else at its next step boundary; compensations
    of committed steps run."""
    return Run.of(runs.cancel_run(app, run_id, actor=caller.name, reason=body.reason))


@router.get("/{run_id}/fork-preview", response_model=list[Step], **requires(Perm.READ))
def fork_preview(
    run_id: str, app: Surefoot, from_position: Annotated[int, Query(ge=1, le=2**31)]
) -> list[Step]:
    """Committed steps a fork from ``from_position`` would run again, under new
    idempotency keys (external systems will not dedupe them)."""
    return [Step.of(entry) for entry in runs.steps_to_repeat(app, run_id, from_position)]


@router.post(
    "/{run_id}/fork",
    response_model=Run,
    status_code=status.HTTP_201_CREATED,
    **requires(Perm.FORK_RUN),
)
def fork_run(run_id: str, body: Fork, app: Surefoot, caller: Caller) -> Run:
    """A new run of the same workflow reusing committed results before
    ``from_position``, optionally with edited input."""
    return Run.of(
        runs.fork_run(
            app, run_id, from_position=body.from_position, inputs=body.input, actor=caller.name
        )
    )
