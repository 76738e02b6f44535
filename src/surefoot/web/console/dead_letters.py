"""Dead-letter: filter, redrive or discard one run, redrive many by filter after a confirm
page that says how many runs it will touch."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from surefoot.domain.access import Permission
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import DeadLetterFilter
from surefoot.domain.status import DeadLetterStatus
from surefoot.errors import SurefootError
from surefoot.ops import dead_letter
from surefoot.web.console.pages import (
    CHECK_CSRF,
    User,
    forbidden,
    now,
    page_args,
    paging,
    problem,
    render,
    see_other,
    surefoot_app,
)

router = APIRouter()

FILTER_FIELDS = ("workflow", "failure_class", "reason", "since_minutes", "status")


def filter_from(values: dict[str, str], *, limit: int = 100, offset: int = 0) -> DeadLetterFilter:
    """The dead-letter filter named by form or query values (unknown values are ignored)."""
    cls = values.get("failure_class", "")
    status = values.get("status", "open")
    since = values.get("since_minutes", "")
    return DeadLetterFilter(
        workflow=values.get("workflow") or None,
        failure_class=FailureClass(cls) if cls in FailureClass.__members__.values() else None,
        reason_contains=values.get("reason") or None,
        after=now() - timedelta(minutes=float(since)) if _number(since) else None,
        status=DeadLetterStatus(status)
        if status in DeadLetterStatus.__members__.values()
        else None,
        limit=limit,
        offset=offset,
    )


def _number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _values(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FILTER_FIELDS}


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters_page(request: Request, principal: User) -> Response:
    app = surefoot_app(request)
    limit, offset = page_args(request)
    values = _values(request)
    values["status"] = values["status"] or "open"
    found = dead_letter.list_dead_letters(app, filter_from(values, limit=limit, offset=offset))
    return render(
        request,
        principal,
        "dead_letters.html",
        title="Dead-letter",
        rows=found,
        form=values,
        classes=[c.value for c in FailureClass],
        workflows=sorted(app.workflows),
        statuses=[s.value for s in DeadLetterStatus],
        paging=paging(request, limit, offset, len(found), None),
    )


@router.get("/dead-letters/redrive", response_class=HTMLResponse)
def confirm_bulk_redrive(request: Request, principal: User) -> Response:
    """The confirm step: how many runs the filter matches, and the first of them."""
    if not principal.can(Permission.REDRIVE):
        return forbidden(request, principal, Permission.REDRIVE)
    values = _values(request)
    values["status"] = "open"  # only open entries can be redriven
    targets = dead_letter.matching(surefoot_app(request), filter_from(values))
    return render(
        request,
        principal,
        "dead_letters_confirm.html",
        title="Redrive by filter",
        targets=targets,
        preview=targets[:25],
        form=values,
    )


@router.post("/dead-letters/redrive", dependencies=CHECK_CSRF)
def bulk_redrive(
    request: Request,
    principal: User,
    expected: Annotated[int, Form()],
    workflow: Annotated[str, Form()] = "",
    failure_class: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    since_minutes: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    if not principal.can(Permission.REDRIVE):
        return forbidden(request, principal, Permission.REDRIVE)
    app = surefoot_app(request)
    values = {
        "workflow": workflow.strip(),
        "failure_class": failure_class.strip(),
        "reason": reason.strip(),
        "since_minutes": since_minutes.strip(),
        "status": "open",
    }
    result = dead_letter.bulk(
        app,
        filter_from(values),
        lambda run_id: dead_letter.redrive(
            app, run_id, actor=principal.name, reason=note.strip() or None
        ),
    )
    return render(
        request,
        principal,
        "dead_letters_done.html",
        title="Redrive by filter: done",
        result=result,
        expected=expected,
        refused=sorted((result.refused or {}).items()),
    )


@router.post("/dead-letters/{run_id}/redrive", dependencies=CHECK_CSRF)
def redrive_one(
    request: Request, principal: User, run_id: str, note: Annotated[str, Form()] = ""
) -> Response:
    if not principal.can(Permission.REDRIVE):
        return forbidden(request, principal, Permission.REDRIVE)
    try:
        dead_letter.redrive(
            surefoot_app(request), run_id, actor=principal.name, reason=note.strip() or None
        )
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other(f"/runs/{run_id}", "redriven")


@router.post("/dead-letters/{run_id}/discard", dependencies=CHECK_CSRF)
def discard_one(
    request: Request, principal: User, run_id: str, reason: Annotated[str, Form()] = ""
) -> Response:
    if not principal.can(Permission.DISCARD):
        return forbidden(request, principal, Permission.DISCARD)
    try:
        dead_letter.discard(surefoot_app(request), run_id, actor=principal.name, reason=reason)
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other("/dead-letters", "discarded")
