"""Runs: the searchable table, the needs-attention view, one run's timeline and its actions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from surefoot.domain.access import Permission
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import RunFilter
from surefoot.domain.status import DeadLetterStatus, RunStatus
from surefoot.errors import SerializationError, SurefootError, WorkflowError
from surefoot.ops import runs as run_ops
from surefoot.web.console import states, summary
from surefoot.web.console.pages import (
    CHECK_CSRF,
    User,
    field,
    forbidden,
    now,
    page_args,
    paging,
    problem,
    render,
    see_other,
    surefoot_app,
)
from surefoot.web.console.timeline import timeline_rows

router = APIRouter()
_CLASSES = frozenset(c.value for c in FailureClass)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, principal: User) -> Response:
    app = surefoot_app(request)
    limit, offset = page_args(request)
    status_text = field(request, "status") or ""
    known = {s.value for s in RunStatus}
    statuses = (RunStatus(status_text),) if status_text in known else ()
    query = field(request, "q")
    class_text = field(request, "failure_class") or ""
    run_filter = RunFilter(
        status=statuses,
        workflow=field(request, "workflow"),
        queue=field(request, "queue"),
        correlation_id=field(request, "correlation_id"),
        failure_class=FailureClass(class_text) if class_text in _CLASSES else None,
        limit=limit,
        offset=offset,
    )
    if query is not None:
        found = app.store.find_run(query)
        rows, total = ([found], 1) if found is not None else ([], 0)
    else:
        rows, total = run_ops.list_runs(app, run_filter)
    at = now()
    return render(
        request,
        principal,
        "runs.html",
        title="Runs",
        rows=[(run, states.run_state(run, at)) for run in rows],
        paging=paging(request, limit, offset, len(rows), total),
        statuses=[s.value for s in RunStatus],
        classes=sorted(_CLASSES),
        workflows=sorted(app.workflows),
        queues=sorted(set(app.queues) | {w.queue for w in app.workflows.values()}),
        form={
            k: field(request, k) or ""
            for k in ("status", "workflow", "queue", "correlation_id", "failure_class", "q")
        },
    )


@router.get("/runs/needs-attention", response_class=HTMLResponse)
def attention_page(request: Request, principal: User) -> Response:
    app = surefoot_app(request)
    limit, offset = page_args(request)
    rows, capped = summary.attention_rows(app, now())
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.why] = counts.get(row.why, 0) + 1
    why = field(request, "why")
    if why is not None:
        rows = [row for row in rows if row.why == why]
    shown = rows[offset : offset + limit]
    at = now()
    return render(
        request,
        principal,
        "attention.html",
        title="Needs attention",
        rows=[(row, states.run_state(row.run, at)) for row in shown],
        counts=counts,
        labels=states.ATTENTION_LABELS,
        why=why or "",
        capped=capped,
        paging=paging(request, limit, offset, len(shown), len(rows)),
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, principal: User, run_id: str) -> Response:
    app = surefoot_app(request)
    try:
        view = run_ops.timeline(app, run_id)
    except SurefootError as exc:
        return problem(request, principal, exc)
    dead = app.store.get_dead_letter(view.run.run_id)
    at = now()
    steps = [(e.position, e.name) for e in view.journal if e.kind.value == "step"]
    return render(
        request,
        principal,
        "run.html",
        title=f"Run {view.run.run_id[:12]}",
        view=view,
        run=view.run,
        state=states.run_state(view.run, at),
        rows=timeline_rows(view),
        dead=dead,
        dead_open=dead is not None and dead.status is DeadLetterStatus.OPEN,
        steps=steps,
        waits=[e for e in view.journal if e.kind.value in ("sleep", "wait")],
    )


@router.post("/runs/{run_id}/cancel", dependencies=CHECK_CSRF)
def cancel(
    request: Request,
    principal: User,
    run_id: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    if not principal.can(Permission.CANCEL_RUN):
        return forbidden(request, principal, Permission.CANCEL_RUN)
    try:
        run = run_ops.cancel_run(
            surefoot_app(request), run_id, actor=principal.name, reason=reason.strip() or None
        )
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other(f"/runs/{run.run_id}", "cancelled")


@router.post("/runs/{run_id}/fork", dependencies=CHECK_CSRF)
def fork(
    request: Request,
    principal: User,
    run_id: str,
    from_position: Annotated[int, Form()],
    inputs: Annotated[str, Form()] = "",
) -> Response:
    if not principal.can(Permission.FORK_RUN):
        return forbidden(request, principal, Permission.FORK_RUN)
    try:
        edited = parse_json_field(inputs, "edited input")
        new = run_ops.fork_run(
            surefoot_app(request),
            run_id,
            from_position=from_position,
            inputs=edited,
            actor=principal.name,
        )
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other(f"/runs/{new.run_id}", "forked")


@router.post("/runs/{run_id}/events", dependencies=CHECK_CSRF)
def send_event(
    request: Request,
    principal: User,
    run_id: str,
    name: Annotated[str, Form()],
    payload: Annotated[str, Form()] = "",
) -> Response:
    if not principal.can(Permission.SEND_EVENT):
        return forbidden(request, principal, Permission.SEND_EVENT)
    try:
        if not name.strip():
            raise WorkflowError("an event needs a name")
        surefoot_app(request).send_event(
            run_id, name.strip(), parse_json_field(payload, "payload"), actor=principal.name
        )
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other(f"/runs/{run_id}", "event")


def parse_json_field(text: str, what: str) -> Any:
    """A JSON form field; empty means None."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SerializationError(
            f"the {what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
