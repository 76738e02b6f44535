"""Dead-letter: runs that exhausted their route. Redrive, discard, by one or by filter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from surefoot.domain.records import DeadLetter, DeadLetterFilter
from surefoot.engine.app import App
from surefoot.engine.runtime import utc_now
from surefoot.errors import InvalidTransitionError, RunNotFoundError


def list_dead_letters(app: App, dl_filter: DeadLetterFilter) -> list[DeadLetter]:
    return app.store.list_dead_letters(dl_filter)


def get_dead_letter(app: App, run_id: str) -> DeadLetter:
    dead = app.store.get_dead_letter(run_id)
    if dead is None:
        raise RunNotFoundError(f"run {run_id!r} has no dead-letter entry")
    return dead


def redrive(app: App, run_id: str, *, actor: str, reason: str | None = None) -> None:
    """Resume the same run from the step that failed (its committed steps are kept)."""
    app.store.redrive(run_id, actor=actor, reason=reason, now=utc_now())
    app.wake_workers()


def discard(app: App, run_id: str, *, actor: str, reason: str) -> None:
    if not reason.strip():
        raise InvalidTransitionError("discarding a dead-lettered run needs a reason")
    app.store.discard(run_id, actor=actor, reason=reason, now=utc_now())


@dataclass
class BulkResult:
    matched: int = 0
    done: int = 0
    refused: dict[str, str] | None = None


def matching(app: App, dl_filter: DeadLetterFilter, *, page: int = 200) -> list[DeadLetter]:
    """Every open dead-letter entry matching the filter (all pages)."""
    found: list[DeadLetter] = []
    offset = 0
    while True:
        batch = app.store.list_dead_letters(replace(dl_filter, limit=page, offset=offset))
        found.extend(batch)
        if len(batch) < page:
            return found
        offset += page


def bulk(
    app: App,
    dl_filter: DeadLetterFilter,
    action: Callable[[str], None],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> BulkResult:
    """Apply ``action`` to every matching entry; one refusal does not stop the rest."""
    targets = matching(app, dl_filter)
    result = BulkResult(matched=len(targets), refused={})
    for index, dead in enumerate(targets, start=1):
        try:
            action(dead.run_id)
            result.done += 1
        except (InvalidTransitionError, RunNotFoundError) as exc:
            assert result.refused is not None
            result.refused[dead.run_id] = str(exc)
        if progress is not None:
            progress(index, len(targets))
    return result
