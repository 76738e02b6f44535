"""The circuit breaker state machine: closed -> open -> half-open (one probe) -> closed or open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from surefoot.domain.breaker import Breaker, BreakerPolicy, BreakerState

POLICY = BreakerPolicy(failure_threshold=3, cooldown_s=30.0)
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def opened() -> Breaker:
    breaker = Breaker("xero")
    for _ in range(POLICY.failure_threshold):
        breaker = breaker.on_transient_failure(T0, POLICY)
    return breaker


def test_new_breaker_is_closed_and_admits():
    breaker = Breaker("xero")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.admits(T0, POLICY)


def test_failures_below_the_threshold_keep_it_closed_and_counted():
    breaker = Breaker("xero")
    for count in range(1, POLICY.failure_threshold):
        breaker = breaker.on_transient_failure(after(count), POLICY)
        assert breaker.state is BreakerState.CLOSED
        assert breaker.consecutive_failures == count
        assert breaker.admits(after(count), POLICY)


def test_threshold_consecutive_failures_open_it_at_the_time_of_the_last_failure():
    breaker = opened()
    assert breaker.state is BreakerState.OPEN
    assert breaker.opened_at == T0
    assert breaker.consecutive_failures == POLICY.failure_threshold
    assert breaker.reopens_at(POLICY) == after(POLICY.cooldown_s)


def test_open_breaker_refuses_attempts_until_the_cooldown_has_passed():
    breaker = opened()
    assert not breaker.admits(T0, POLICY)
    assert not breaker.admits(after(POLICY.cooldown_s - 0.001), POLICY)
    assert breaker.admits(after(POLICY.cooldown_s), POLICY)
    assert breaker.admits(after(POLICY.cooldown_s + 100), POLICY)


def test_open_breaker_without_an_open_time_never_admits():
    breaker = Breaker("xero", BreakerState.OPEN, 5, None)
    assert breaker.reopens_at(POLICY) is None
    assert not breaker.admits(after(10_000), POLICY)


def test_half_open_admits_exactly_one_probe():
    breaker = opened()
    half = Breaker("xero", BreakerState.HALF_OPEN, breaker.consecutive_failures, T0)
    assert half.admits(after(31), POLICY)
    probing = half.start_probe("run-1:3", after(31))
    assert probing.state is BreakerState.HALF_OPEN
    assert probing.probe_owner == "run-1:3"
    assert probing.opened_at == after(31)
    assert not probing.admits(after(31), POLICY)
    assert not probing.admits(after(31 + POLICY.cooldown_s - 1), POLICY)


def test_probe_whose_worker_died_is_replaced_after_a_cooldown():
    probing = opened().start_probe("run-1:3", after(31))
    assert probing.admits(after(31 + POLICY.cooldown_s), POLICY)


def test_start_probe_on_an_open_breaker_makes_it_half_open():
    probing = opened().start_probe("run-1:3", after(30))
    assert probing.state is BreakerState.HALF_OPEN
    assert probing.probe_owner == "run-1:3"


def test_successful_probe_closes_and_resets_the_breaker():
    closed = opened().start_probe("run-1:3", after(30)).on_success()
    assert closed == Breaker("xero")
    assert closed.admits(after(31), POLICY)


def test_failed_probe_opens_it_again_with_a_new_cooldown():
    probing = opened().start_probe("run-1:3", after(30))
    reopened = probing.on_transient_failure(after(40), POLICY)
    assert reopened.state is BreakerState.OPEN
    assert reopened.opened_at == after(40)
    assert reopened.probe_owner is None
    assert not reopened.admits(after(41), POLICY)
    assert reopened.admits(after(70), POLICY)


def test_success_between_failures_resets_the_count():
    breaker = Breaker("xero")
    breaker = breaker.on_transient_failure(T0, POLICY).on_transient_failure(T0, POLICY)
    breaker = breaker.on_success().on_transient_failure(T0, POLICY)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 1


def test_transitions_never_mutate_the_original():
    breaker = Breaker("xero")
    breaker.on_transient_failure(T0, POLICY)
    assert breaker == Breaker("xero")
