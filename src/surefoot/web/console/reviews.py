"""The review queue and one item's decision form (its fields depend on the item's kind)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from surefoot.domain.access import Permission
from surefoot.domain.status import ReviewStatus
from surefoot.errors import SurefootError
from surefoot.ops import review as review_ops
from surefoot.web.console import states
from surefoot.web.console.pages import (
    CHECK_CSRF,
    User,
    field,
    forbidden,
    page_args,
    paging,
    problem,
    render,
    see_other,
    surefoot_app,
)
from surefoot.web.console.runs import parse_json_field

router = APIRouter()

# What each action of the built-in kinds asks for, and what it does to the run.
ACTION_HELP = {
    ("approval", "approve"): "The step runs again with the approval granted.",
    ("approval", "reject"): "The step fails as a policy failure; the run takes its route.",
    ("data", "retry"): "Run the step again, with the inputs below (edit them to fix the record).",
    ("data", "skip"): "Do not run the step; use the value below as its result.",
    ("data", "abort"): "Fail the run: compensations run, the run is dead-lettered.",
    ("ambiguous", "happened"): "The effect did happen: record the result below, run on.",
    ("ambiguous", "retry"): "The effect did not happen: send the step again (same key).",
    ("ambiguous", "abort"): "Fail the run: compensations run, the run is dead-lettered.",
}
VALUE_ACTIONS = {("data", "skip"), ("ambiguous", "happened")}


@router.get("/reviews", response_class=HTMLResponse)
def reviews_page(request: Request, principal: User) -> Response:
    limit, offset = page_args(request)
    status_text = request.query_params.get("status", "open")
    status = ReviewStatus(status_text) if status_text in ReviewStatus.__members__.values() else None
    items = review_ops.list_reviews(surefoot_app(request), status, limit=limit, offset=offset)
    return render(
        request,
        principal,
        "reviews.html",
        title="Review queue",
        items=items,
        status=status_text,
        statuses=[s.value for s in ReviewStatus],
        paging=paging(request, limit, offset, len(items), None),
        run_filter=field(request, "run_id") or "",
    )


@router.get("/reviews/{item_id}", response_class=HTMLResponse)
def review_page(request: Request, principal: User, item_id: str) -> Response:
    try:
        item = review_ops.get_review(surefoot_app(request), item_id)
    except SurefootError as exc:
        return problem(request, principal, exc)
    payload, stacks = states.without_tracebacks(review_ops.payload(item))
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    return render(
        request,
        principal,
        "review.html",
        title=item.title,
        item=item,
        payload=payload,
        payload_text=json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False),
        stacks=stacks,
        inputs_text=json.dumps(inputs, indent=2, ensure_ascii=False) if inputs else "",
        decision=json.loads(item.decision) if item.decision else None,
        help=ACTION_HELP,
        value_actions=VALUE_ACTIONS,
    )


@router.post("/reviews/{item_id}/decide", dependencies=CHECK_CSRF)
def decide(
    request: Request,
    principal: User,
    item_id: str,
    action: Annotated[str, Form()],
    value: Annotated[str, Form()] = "",
    inputs: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
) -> Response:
    if not principal.can(Permission.DECIDE_REVIEW):
        return forbidden(request, principal, Permission.DECIDE_REVIEW)
    app = surefoot_app(request)
    try:
        options: dict[str, Any] = {}
        if value.strip():
            options["value"] = parse_json_field(value, "value")
        item = review_ops.decide(
            app,
            item_id,
            action,
            actor=principal.name,
            inputs=parse_json_field(inputs, "edited input"),
            comment=comment.strip() or None,
            **options,
        )
    except SurefootError as exc:
        return problem(request, principal, exc)
    return see_other(f"/runs/{item.run_id}", "decided")
