"""Queues (pause, resume) and circuit breakers (state, reset)."""

from __future__ import annotations

from fastapi import APIRouter

from surefoot.domain.access import Permission as Perm
from surefoot.ops import queues
from surefoot.web.api.common import ApiRoute, Caller, Surefoot, requires
from surefoot.web.api.fields import Strict
from surefoot.web.api.models import BreakerState, Queue

router = APIRouter(tags=["queues"], route_class=ApiRoute)


class Why(Strict):
    reason: str | None = None


def _queue(app: Surefoot, name: str) -> Queue:
    for found, paused, ready in queues.list_queues(app):
        if found == name:
            spec = app.queues.get(name)
            return Queue(
                name=name,
                paused=paused,
                ready=ready,
                concurrency=spec.concurrency if spec else None,
                worker_concurrency=spec.worker_concurrency if spec else None,
                max_depth=spec.max_depth if spec else None,
            )
    return Queue(name=name, paused=False, ready=0)


@router.get("/queues", response_model=list[Queue], **requires(Perm.READ))
def list_queues(app: Surefoot) -> list[Queue]:
    """Queues with runs, paused, or declared by the app, with their declared limits."""
    return [_queue(app, name) for name, _paused, _ready in queues.list_queues(app)]


@router.post("/queues/{name}/pause", response_model=Queue, **requires(Perm.MANAGE_QUEUES))
def pause(name: str, body: Why, app: Surefoot, caller: Caller) -> Queue:
    """Stop claiming runs of the queue; runs executing go on to their next stop."""
    queues.pause(app, name, actor=caller.name, reason=body.reason)
    return _queue(app, name)


@router.post("/queues/{name}/resume", response_model=Queue, **requires(Perm.MANAGE_QUEUES))
def resume(name: str, body: Why, app: Surefoot, caller: Caller) -> Queue:
    queues.resume(app, name, actor=caller.name, reason=body.reason)
    return _queue(app, name)


@router.get("/breakers", response_model=list[BreakerState], **requires(Perm.READ))
def list_breakers(app: Surefoot) -> list[BreakerState]:
    return [BreakerState.of(b) for b in queues.list_breakers(app)]


@router.post("/breakers/{key}/reset", response_model=BreakerState, **requires(Perm.MANAGE_QUEUES))
def reset_breaker(key: str, body: Why, app: Surefoot, caller: Caller) -> BreakerState:
    """Close a breaker by hand; answers its state before the reset."""
    return BreakerState.of(queues.reset_breaker(app, key, actor=caller.name, reason=body.reason))
