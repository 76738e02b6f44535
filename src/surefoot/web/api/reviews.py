"""Review and exception queue: list, show, decide (the decision resumes the run)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from surefoot.domain.access import Permission as Perm
from surefoot.domain.status import ReviewStatus
from surefoot.ops import review
from surefoot.web.api.common import ApiRoute, Caller, Limit, Offset, Surefoot, requires
from surefoot.web.api.fields import Strict
from surefoot.web.api.models import Page, Review

router = APIRouter(prefix="/reviews", tags=["reviews"], route_class=ApiRoute)


class Decision(Strict):
    action: str
    value: Any = None
    inputs: dict[str, Any] | None = None
    comment: str | None = None


@router.get("", response_model=Page[Review], **requires(Perm.READ))
def list_reviews(
    app: Surefoot,
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[Literal["open", "decided", "cancelled", "all"], Query()] = "open",
) -> Page[Review]:
    """Review items, highest priority first."""
    wanted = None if status == "all" else ReviewStatus(status)
    found = review.list_reviews(app, wanted, limit=limit, offset=offset)
    return Page[Review](items=[Review.of(i) for i in found], total=None, limit=limit, offset=offset)


@router.get("/{item_id}", response_model=Review, **requires(Perm.READ))
def show_review(item_id: str, app: Surefoot) -> Review:
    return Review.of(review.get_review(app, item_id))


@router.post("/{item_id}/decision", response_model=Review, **requires(Perm.DECIDE_REVIEW))
def decide(item_id: str, body: Decision, app: Surefoot, caller: Caller) -> Review:
    """Decide with one of the item's actions. ``value`` (for skip / happened) and
    ``inputs`` (edited step inputs, for retry of a data item) as the item allows."""
    options: dict[str, Any] = {}
    if "value" in body.model_fields_set:
        options["value"] = body.value
    decided = review.decide(
        app,
        item_id,
        body.action,
        actor=caller.name,
        inputs=body.inputs,
        comment=body.comment,
        **options,
    )
    return Review.of(decided)
