"""decide_route: the one place that decides whether a failure is retried."""

from __future__ import annotations

import random
from typing import Any

import pytest

from surefoot.domain.failures import FailureClass
from surefoot.domain.retry import Retry
from surefoot.domain.routes import (
    DEFAULT_ROUTES,
    Action,
    Decision,
    Route,
    decide_route,
    effective_routes,
    parse_routes,
)
from surefoot.errors import DefinitionError

POLICY = Retry(max_attempts=3, initial_delay_s=1.0, max_delay_s=10.0, multiplier=2.0)
NON_TRANSIENT = [c for c in FailureClass if c is not FailureClass.TRANSIENT]


def decide(
    failure_class: FailureClass = FailureClass.TRANSIENT,
    route: Route = Route.RETRY,
    **options: Any,
) -> Decision:
    options.setdefault("policy", POLICY)
    options.setdefault("attempts_made", 1)
    options.setdefault("elapsed_s", 0.0)
    options.setdefault("rng", random.Random(7))
    return decide_route(failure_class, route, **options)


def test_default_routes_are_the_design_table():
    assert DEFAULT_ROUTES == {
        FailureClass.TRANSIENT: Route.RETRY,
        FailureClass.PERMANENT: Route.FAIL,
        FailureClass.DATA: Route.REVIEW,
        FailureClass.POLICY: Route.APPROVAL,
        FailureClass.AMBIGUOUS: Route.RECONCILE,
    }


@pytest.mark.parametrize("failure_class", NON_TRANSIENT)
def test_only_transient_failures_are_retried_whatever_the_route_table_says(failure_class):
    decision = decide(failure_class, Route.RETRY, attempts_made=1)
    assert decision.action is Action.FAIL
    assert decision.route is Route.FAIL
    assert decision.delay_s == 0.0
    assert "never retried" in decision.reason


def test_transient_failure_below_max_attempts_is_retried_later_with_backoff():
    decision = decide(attempts_made=1)
    assert decision.action is Action.RETRY_LATER
    assert decision.route is Route.RETRY
    assert 0.0 < decision.delay_s <= POLICY.initial_delay_s
    assert decision.reason == "retry 2 of 3"


@pytest.mark.parametrize("attempts_made", [3, 4, 10])
def test_reaching_max_attempts_dead_letters_instead_of_retrying(attempts_made):
    decision = decide(attempts_made=attempts_made)
    assert decision.action is Action.DEAD_LETTER
    assert decision.route is Route.RETRY
    assert f"gave up after {attempts_made} attempts" in decision.reason
    assert "max_attempts=3" in decision.reason


def test_max_attempts_one_never_retries():
    decision = decide(policy=Retry(max_attempts=1), attempts_made=1)
    assert decision.action is Action.DEAD_LETTER


def test_retry_that_would_pass_the_deadline_dead_letters():
    policy = Retry(max_attempts=10, initial_delay_s=1.0, deadline_s=5.0)
    decision = decide(policy=policy, attempts_made=1, elapsed_s=4.5, retry_after_s=2.0)
    assert decision.action is Action.DEAD_LETTER
    assert "5s deadline" in decision.reason


def test_retry_inside_the_deadline_goes_ahead():
    policy = Retry(max_attempts=10, initial_delay_s=1.0, deadline_s=5.0)
    decision = decide(policy=policy, attempts_made=1, elapsed_s=1.0, retry_after_s=2.0)
    assert decision.action is Action.RETRY_LATER
    assert decision.delay_s == 2.0


def test_instant_retries_with_time_already_past_the_deadline_dead_letter():
    policy = Retry(max_attempts=10, deadline_s=5.0)
    decision = decide(policy=policy, elapsed_s=6.0, instant=True)
    assert decision.action is Action.DEAD_LETTER


def test_retry_after_is_a_floor_on_the_delay():
    decision = decide(attempts_made=1, retry_after_s=30.0)
    assert decision.delay_s == 30.0
    assert decision.action is Action.RETRY_LATER


def test_retry_after_is_capped_by_max_retry_after():
    policy = Retry(max_attempts=3, initial_delay_s=0.1, max_retry_after_s=5.0)
    decision = decide(policy=policy, retry_after_s=86_400.0 * 365)
    assert decision.delay_s == 5.0


def test_instant_mode_retries_now_with_no_delay_even_when_asked_to_wait():
    decision = decide(attempts_made=1, retry_after_s=30.0, instant=True)
    assert decision.action is Action.RETRY_NOW
    assert decision.delay_s == 0.0


def test_instant_mode_still_stops_at_max_attempts():
    assert decide(attempts_made=3, instant=True).action is Action.DEAD_LETTER


def test_zero_backoff_policy_retries_now():
    policy = Retry(max_attempts=3, initial_delay_s=0.0)
    decision = decide(policy=policy)
    assert decision.action is Action.RETRY_NOW
    assert decision.delay_s == 0.0


ROUTE_ACTIONS = {
    Route.FAIL: Action.FAIL,
    Route.REVIEW: Action.REVIEW,
    Route.APPROVAL: Action.APPROVAL,
    Route.RECONCILE: Action.RECONCILE,
    Route.RAISE: Action.RAISE,
}


@pytest.mark.parametrize("failure_class", list(FailureClass))
@pytest.mark.parametrize("route", list(ROUTE_ACTIONS))
def test_every_non_retry_route_maps_to_its_action_for_every_class(failure_class, route):
    decision = decide(failure_class, route, attempts_made=99)
    assert decision.action is ROUTE_ACTIONS[route]
    assert decision.route is route
    assert decision.delay_s == 0.0


def test_every_route_has_an_action():
    assert set(ROUTE_ACTIONS) | {Route.RETRY} == set(Route)


def test_parse_routes_accepts_known_classes_and_routes():
    parsed = parse_routes({"data": "raise", "ambiguous": "review"})
    assert parsed == {FailureClass.DATA: Route.RAISE, FailureClass.AMBIGUOUS: Route.REVIEW}


def test_parse_routes_of_nothing_is_empty():
    assert parse_routes(None) == {}
    assert parse_routes({}) == {}


def test_parse_routes_rejects_an_unknown_class_and_lists_the_known_ones():
    with pytest.raises(DefinitionError, match=r"unknown failure class 'flaky'.*transient"):
        parse_routes({"flaky": "retry"})


def test_parse_routes_rejects_an_unknown_route_and_lists_the_known_ones():
    with pytest.raises(DefinitionError, match=r"unknown route 'ignore' for data.*reconcile"):
        parse_routes({"data": "ignore"})


def test_later_route_layers_override_earlier_ones_and_defaults_fill_the_rest():
    app = {FailureClass.DATA: Route.FAIL}
    workflow = {FailureClass.DATA: Route.RAISE, FailureClass.POLICY: Route.FAIL}
    step = {FailureClass.POLICY: Route.REVIEW}
    merged = effective_routes(app, workflow, step)
    assert merged[FailureClass.DATA] is Route.RAISE
    assert merged[FailureClass.POLICY] is Route.REVIEW
    assert merged[FailureClass.TRANSIENT] is Route.RETRY
    assert merged[FailureClass.PERMANENT] is Route.FAIL
    assert effective_routes() == dict(DEFAULT_ROUTES)
