"""Queues (pause, resume), their declared limits, rate limits and circuit breakers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from surefoot.domain.access import Permission
from surefoot.domain.breaker import BreakerPolicy
from surefoot.errors import SurefootError
from surefoot.ops import queues as queue_ops
from surefoot.web.console.pages import (
    CHECK_CSRF,
    User,
    forbidden,
    page_args,
    paging,
    problem,
    render,
    see_other,
    surefoot_app,
)

router = APIRouter()


@router.get("/queues", response_class=HTMLResponse)
def queues_page(request: Request, principal: User) -> Response:
    app = surefoot_app(request)
    limit, offset = page_args(request)
    every = queue_ops.list_queues(app)
    shown = every[offset : offset + limit]
    policy = BreakerPolicy(app.settings.breaker_failure_threshold, app.settings.breaker_cooldown_s)
    return render(
        request,
        principal,
        "queues.html",
        title="Queues and breakers",
        queues=[(name, paused, ready, app.queues.get(name)) for name, paused, ready in shown],
        rate_limits=sorted(app.rate_limits.values(), key=lambda r: r.key),
        breakers=[(b, b.reopens_at(policy)) for b in queue_ops.list_breakers(app)],
        paging=paging(request, limit, offset, len(shown), len(every)),
    )


def _queue_action(request: Request, principal: User, queue: str, *, pause: bool) -> Response:
    if not principal.can(Permission.MANAGE_QUEUES):
        return forbidden(request, principal, Permission.MANAGE_QUEUES)
    app = surefoot_app(request)
    try:
        if pause:
            queue_ops.pause(app, queue, actor=principal.name)
        else:
            queue_ops.resume(app, queue, actor=principal.name)
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other("/queues", "paused" if pause else "resumed")


@router.post("/queues/pause", dependencies=CHECK_CSRF)
def pause(request: Request, principal: User, queue: Annotated[str, Form()]) -> Response:
    return _queue_action(request, principal, queue, pause=True)


@router.post("/queues/resume", dependencies=CHECK_CSRF)
def resume(request: Request, principal: User, queue: Annotated[str, Form()]) -> Response:
    return _queue_action(request, principal, queue, pause=False)


@router.post("/queues/breakers/reset", dependencies=CHECK_CSRF)
def reset_breaker(request: Request, principal: User, key: Annotated[str, Form()]) -> Response:
    if not principal.can(Permission.MANAGE_QUEUES):
        return forbidden(request, principal, Permission.MANAGE_QUEUES)
    try:
        queue_ops.reset_breaker(surefoot_app(request), key, actor=principal.name)
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other("/queues", "breaker")
