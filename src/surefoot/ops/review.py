"""Review and exception queues: items created by ctx.review and by the data, policy and
ambiguous routes. A decision resumes the run."""

from __future__ import annotations

import json
from typing import Any

from surefoot.domain.codec import canonical
from surefoot.domain.records import ReviewItem
from surefoot.domain.status import ReviewStatus
from surefoot.engine.app import App
from surefoot.engine.definitions import StepDef
from surefoot.engine.runtime import utc_now
from surefoot.errors import InvalidDecisionError, ReviewItemNotFoundError, SerializationError

_NEEDS_VALUE = {
    "skip": "the value the step should return",
    "happened": "the result the effect produced",
}

_MISSING = object()


def list_reviews(
    app: App, status: ReviewStatus | None = ReviewStatus.OPEN, *, limit: int = 50, offset: int = 0
) -> list[ReviewItem]:
    return app.store.list_reviews(status, limit, offset)


def get_review(app: App, item_id: str) -> ReviewItem:
    item = app.store.get_review(item_id)
    if item is None:
        raise ReviewItemNotFoundError(f"no review item {item_id!r}")
    return item


def decide(
    app: App,
    item_id: str,
    action: str,
    *,
    actor: str,
    value: Any = _MISSING,
    inputs: dict[str, Any] | None = None,
    comment: str | None = None,
) -> ReviewItem:
    """Record a decision and resume the run. Validated before anything is written."""
    item = get_review(app, item_id)
    if action not in item.actions:
        raise InvalidDecisionError(
            f"{action!r} is not an action of review item {item_id} "
            f"(allowed: {', '.join(item.actions)})"
        )
    decision: dict[str, Any] = {"action": action}
    step = _step_of(app, item)
    if action in _NEEDS_VALUE and item.kind in ("data", "ambiguous"):
        if value is _MISSING:
            raise InvalidDecisionError(f"{action!r} needs --value: {_NEEDS_VALUE[action]}")
        if step is not None:
            try:
                step.encode_result(value)
            except SerializationError as exc:
                raise InvalidDecisionError(
                    f"the value does not fit what step {step.name} returns: {exc}"
                ) from exc
        decision["value"] = value
    elif value is not _MISSING:
        decision["value"] = value
    if inputs is not None:
        if action != "retry" or item.kind != "data":
            raise InvalidDecisionError("edited inputs go with the 'retry' action of a data item")
        if not isinstance(inputs, dict):
            raise InvalidDecisionError("edited inputs must be a JSON object of named arguments")
        if step is not None:
            try:
                step.signature.validate_inputs(canonical(inputs))
            except SerializationError as exc:
                raise InvalidDecisionError(
                    f"the edited inputs do not fit step {step.name}: {exc}"
                ) from exc
        decision["inputs"] = inputs
    if comment:
        decision["comment"] = comment
    decided = app.store.decide_review(
        item_id, decision=canonical(decision), actor=actor, reason=comment, now=utc_now()
    )
    app.wake_workers()
    return decided


def _step_of(app: App, item: ReviewItem) -> StepDef | None:
    """The step a data or ambiguous item is about, when this app declares it."""
    if item.kind not in ("data", "ambiguous", "approval"):
        return None
    name = (payload(item) or {}).get("step")
    return app.steps.get(name) if isinstance(name, str) else None


def payload(item: ReviewItem) -> Any:
    return json.loads(item.payload) if item.payload else None
