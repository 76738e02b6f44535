"""Routes: what happens to a failure of each class. Routes are data.

``decide_route`` is the one place that decides whether a failure is retried;
nothing else in Surefoot retries. Its inputs are plain values so that every
branch is a unit test.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from surefoot.domain.failures import FailureClass
from surefoot.domain.retry import Retry, backoff_delay_s
from surefoot.errors import DefinitionError


class Route(StrEnum):
    RETRY = "retry"  # bounded retries with backoff, then dead-letter
    FAIL = "fail"  # stop now: compensate, fail, dead-letter
    REVIEW = "review"  # park the run with a review item for a person
    APPROVAL = "approval"  # park the run awaiting approval of the named rule
    RECONCILE = "reconcile"  # look the effect up by idempotency key, else review
    RAISE = "raise"  # deliver StepFailedError to the workflow code


DEFAULT_ROUTES: Mapping[FailureClass, Route] = {
    FailureClass.TRANSIENT: Route.RETRY,
    FailureClass.PERMANENT: Route.FAIL,
    FailureClass.DATA: Route.REVIEW,
    FailureClass.POLICY: Route.APPROVAL,
    FailureClass.AMBIGUOUS: Route.RECONCILE,
}


def parse_routes(overrides: Mapping[str, str] | None) -> dict[FailureClass, Route]:
    """Validate a ``{"class": "route"}`` mapping given to a decorator."""
    result: dict[FailureClass, Route] = {}
    for key, value in (overrides or {}).items():
        try:
            cls = FailureClass(key)
        except ValueError:
            known = ", ".join(c.value for c in FailureClass)
            raise DefinitionError(
                f"unknown failure class {key!r} in routes (known: {known})"
            ) from None
        try:
            result[cls] = Route(value)
        except ValueError:
            known = ", ".join(r.value for r in Route)
            raise DefinitionError(f"unknown route {value!r} for {key} (known: {known})") from None
    return result


def effective_routes(*layers: Mapping[FailureClass, Route]) -> dict[FailureClass, Route]:
    """Defaults, overridden by each later layer (app, then workflow, then step)."""
    merged = dict(DEFAULT_ROUTES)
    for layer in layers:
        merged.update(layer)
    return merged


class Action(StrEnum):
    RETRY_NOW = "retry_now"
    RETRY_LATER = "retry_later"
    DEAD_LETTER = "dead_letter"  # retries exhausted: fail without compensating
    FAIL = "fail"  # compensate, fail, dead-letter
    REVIEW = "review"
    APPROVAL = "approval"
    RECONCILE = "reconcile"
    RAISE = "raise"


@dataclass(frozen=True)
class Decision:
    action: Action
    route: Route
    delay_s: float = 0.0
    reason: str = ""


def decide_route(
    failure_class: FailureClass,
    route: Route,
    *,
    policy: Retry,
    attempts_made: int,
    elapsed_s: float,
    retry_after_s: float | None = None,
    instant: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """The next action for a failure, given its class, its route and the budget left."""
    if route is Route.RETRY:
        if failure_class is not FailureClass.TRANSIENT:
            # Only transient failures are retried, whatever a route table says.
            return Decision(Action.FAIL, Route.FAIL, reason=f"{failure_class} is never retried")
        if attempts_made >= policy.max_attempts:
            return Decision(
                Action.DEAD_LETTER,
                route,
                reason=f"gave up after {attempts_made} attempts "
                f"(max_attempts={policy.max_attempts})",
            )
        delay = (
            0.0
            if instant
            else backoff_delay_s(policy, attempts_made, retry_after_s=retry_after_s, rng=rng)
        )
        if policy.deadline_s is not None and elapsed_s + delay > policy.deadline_s:
            return Decision(
                Action.DEAD_LETTER,
                route,
                reason=f"next retry would pass the {policy.deadline_s:g}s deadline",
            )
        action = Action.RETRY_NOW if delay <= 0 else Action.RETRY_LATER
        return Decision(
            action,
            route,
            delay_s=delay,
            reason=f"retry {attempts_made + 1} of {policy.max_attempts}",
        )
    mapping = {
        Route.FAIL: Action.FAIL,
        Route.REVIEW: Action.REVIEW,
        Route.APPROVAL: Action.APPROVAL,
        Route.RECONCILE: Action.RECONCILE,
        Route.RAISE: Action.RAISE,
    }
    return Decision(mapping[route], route, reason=f"{failure_class} -> {route}")
