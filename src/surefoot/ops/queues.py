"""Queues and circuit breakers."""

from __future__ import annotations

from surefoot.domain.breaker import Breaker
from surefoot.domain.records import AuditRecord
from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now


def pause(app: App, queue: str, *, actor: str, reason: str | None = None) -> None:
    app.store.set_queue_paused(queue, paused=True, actor=actor, reason=reason, now=utc_now())


def resume(app: App, queue: str, *, actor: str, reason: str | None = None) -> None:
    app.store.set_queue_paused(queue, paused=False, actor=actor, reason=reason, now=utc_now())
    app.wake_workers()


def list_queues(app: App) -> list[tuple[str, bool, int]]:
    """Every queue with runs, paused, or declared by the app: (name, paused, ready runs)."""
    known = {name: (name, paused, ready) for name, paused, ready in app.store.list_queues()}
    for name in app.queues:
        known.setdefault(name, (name, False, 0))
    return [known[name] for name in sorted(known)]


def list_breakers(app: App) -> list[Breaker]:
    return app.store.get_breakers()


def reset_breaker(app: App, key: str, *, actor: str, reason: str | None = None) -> Breaker:
    """Close a breaker by hand (after the dependency is known to be back)."""
    now = utc_now()
    before = app.store.update_breaker(key, lambda b: (Breaker(key), b), now)
    app.store.append_audit(
        AuditRecord(
            actor,
            "breaker.reset",
            "breaker",
            key,
            {"state": before.state.value},
            {"state": "closed"},
            reason=reason,
        ),
        now,
    )
    app.wake_workers()
    return before
