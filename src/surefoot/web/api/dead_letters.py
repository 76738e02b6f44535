"""Dead-letter: list, show, redrive or discard one, or every entry a filter matches.

A bulk call with ``dry_run: true`` changes nothing and answers how many entries it would
touch (the console shows that count before the operator confirms).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field, StrictBool

from surefoot.domain.access import Permission as Perm
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import DeadLetterFilter
from surefoot.domain.status import DeadLetterStatus
from surefoot.engine.app import App
from surefoot.ops import dead_letter
from surefoot.web.api.common import ApiRoute, Caller, Limit, Offset, Surefoot, requires
from surefoot.web.api.fields import Strict, Timestamp
from surefoot.web.api.models import BulkOutcome, DeadLetterEntry, Page

router = APIRouter(prefix="/dead-letters", tags=["dead-letters"], route_class=ApiRoute)


class Selection(Strict):
    """Which open entries a bulk action touches; no field means every open entry."""

    workflow: str | None = None
    failure_class: FailureClass | None = None
    reason_contains: str | None = None
    dead_lettered_after: Timestamp | None = None
    dead_lettered_before: Timestamp | None = None
    dry_run: StrictBool = False

    def as_filter(self) -> DeadLetterFilter:
        return DeadLetterFilter(
            workflow=self.workflow,
            failure_class=self.failure_class,
            reason_contains=self.reason_contains,
            after=self.dead_lettered_after,
            before=self.dead_lettered_before,
        )


class BulkRedrive(Selection):
    reason: str | None = Field(None, description="Why (goes to the audit log).")


class BulkDiscard(Selection):
    reason: str = Field(
        min_length=1, pattern=r"\S", description="Why (required; goes to the audit log)."
    )


class Redrive(Strict):
    reason: str | None = None


class Discard(Strict):
    reason: str = Field(min_length=1, pattern=r"\S", description="Why (required).")


@router.get("", response_model=Page[DeadLetterEntry], **requires(Perm.READ))
def list_dead_letters(
    app: Surefoot,
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[DeadLetterStatus | None, Query()] = DeadLetterStatus.OPEN,
    workflow: str | None = None,
    failure_class: FailureClass | None = None,
    reason_contains: str | None = None,
    dead_lettered_after: Timestamp | None = None,
    dead_lettered_before: Timestamp | None = None,
) -> Page[DeadLetterEntry]:
    """Dead-letter entries, oldest first (open ones unless ``status`` says otherwise)."""
    found = dead_letter.list_dead_letters(
        app,
        DeadLetterFilter(
            workflow=workflow,
            failure_class=failure_class,
            reason_contains=reason_contains,
            after=dead_lettered_after,
            before=dead_lettered_before,
            status=status,
            limit=limit,
            offset=offset,
        ),
    )
    return Page[DeadLetterEntry](
        items=[DeadLetterEntry.of(d) for d in found], total=None, limit=limit, offset=offset
    )


@router.post("/redrive", response_model=BulkOutcome, **requires(Perm.REDRIVE))
def redrive_matching(body: BulkRedrive, app: Surefoot, caller: Caller) -> BulkOutcome:
    """Redrive every open entry the selection matches (one refusal does not stop the
    rest); with ``dry_run`` only count them."""
    return _bulk(
        app,
        body,
        lambda run_id: dead_letter.redrive(app, run_id, actor=caller.name, reason=body.reason),
    )


@router.post("/discard", response_model=BulkOutcome, **requires(Perm.DISCARD))
def discard_matching(body: BulkDiscard, app: Surefoot, caller: Caller) -> BulkOutcome:
    """Discard every open entry the selection matches; with ``dry_run`` only count them."""
    return _bulk(
        app,
        body,
        lambda run_id: dead_letter.discard(app, run_id, actor=caller.name, reason=body.reason),
    )


def _bulk(app: App, body: Selection, action: Callable[[str], None]) -> BulkOutcome:
    if body.dry_run:
        matched = len(dead_letter.matching(app, body.as_filter()))
        return BulkOutcome(matched=matched, done=0, dry_run=True)
    result = dead_letter.bulk(app, body.as_filter(), action)
    return BulkOutcome(
        matched=result.matched, done=result.done, dry_run=False, refused=result.refused or {}
    )


@router.get("/{run_id}", response_model=DeadLetterEntry, **requires(Perm.READ))
def show_dead_letter(run_id: str, app: Surefoot) -> DeadLetterEntry:
    """The run's latest dead-letter entry (its timeline is at ``/runs/{run_id}``)."""
    return DeadLetterEntry.of(dead_letter.get_dead_letter(app, run_id))


@router.post("/{run_id}/redrive", response_model=DeadLetterEntry, **requires(Perm.REDRIVE))
def redrive(run_id: str, body: Redrive, app: Surefoot, caller: Caller) -> DeadLetterEntry:
    """Resume the run from the step that failed; its committed steps are kept."""
    dead_letter.redrive(app, run_id, actor=caller.name, reason=body.reason)
    return DeadLetterEntry.of(dead_letter.get_dead_letter(app, run_id))


@router.post("/{run_id}/discard", response_model=DeadLetterEntry, **requires(Perm.DISCARD))
def discard(run_id: str, body: Discard, app: Surefoot, caller: Caller) -> DeadLetterEntry:
    """Close the entry without running it again."""
    dead_letter.discard(app, run_id, actor=caller.name, reason=body.reason)
    return DeadLetterEntry.of(dead_letter.get_dead_letter(app, run_id))
