"""Backoff math: exponential ceiling, full jitter, Retry-After as a bounded floor."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surefoot.domain.retry import NO_RETRY, Retry, backoff_delay_s
from surefoot.errors import DefinitionError


def ceiling(policy: Retry, attempts_made: int) -> float:
    return min(
        policy.max_delay_s, policy.initial_delay_s * policy.multiplier ** max(0, attempts_made - 1)
    )


def test_full_jitter_stays_between_zero_and_the_exponential_ceiling():
    policy = Retry(max_attempts=20, initial_delay_s=0.5, max_delay_s=8.0, multiplier=2.0)
    rng = random.Random(1234)
    for attempts_made in range(1, 12):
        for _ in range(50):
            delay = backoff_delay_s(policy, attempts_made, rng=rng)
            assert 0.0 <= delay <= ceiling(policy, attempts_made)


def test_ceiling_grows_exponentially_then_stops_at_max_delay():
    policy = Retry(initial_delay_s=0.5, max_delay_s=8.0, multiplier=2.0)
    assert [ceiling(policy, n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_actually_spreads_delays_over_the_interval():
    policy = Retry(initial_delay_s=10.0, max_delay_s=10.0)
    rng = random.Random(99)
    delays = [backoff_delay_s(policy, 1, rng=rng) for _ in range(200)]
    assert min(delays) < 2.0
    assert max(delays) > 8.0


def test_same_seed_gives_the_same_delays():
    policy = Retry(initial_delay_s=1.0, max_delay_s=30.0)
    first = [backoff_delay_s(policy, n, rng=random.Random(5)) for n in range(1, 6)]
    second = [backoff_delay_s(policy, n, rng=random.Random(5)) for n in range(1, 6)]
    assert first == second


def test_before_any_failed_attempt_the_ceiling_is_the_initial_delay():
    policy = Retry(initial_delay_s=2.0, max_delay_s=60.0)
    rng = random.Random(3)
    assert all(0.0 <= backoff_delay_s(policy, 0, rng=rng) <= 2.0 for _ in range(50))


def test_retry_after_is_never_undercut():
    policy = Retry(initial_delay_s=0.1, max_delay_s=1.0)
    assert backoff_delay_s(policy, 1, retry_after_s=12.0, rng=random.Random(0)) == 12.0


def test_hostile_retry_after_is_bounded_by_max_retry_after():
    policy = Retry(initial_delay_s=0.1, max_delay_s=1.0, max_retry_after_s=60.0)
    assert backoff_delay_s(policy, 1, retry_after_s=1e9, rng=random.Random(0)) == 60.0


def test_small_retry_after_does_not_shorten_a_larger_jitter_draw():
    policy = Retry(initial_delay_s=100.0, max_delay_s=100.0)
    rng = random.Random(11)
    for _ in range(50):
        assert backoff_delay_s(policy, 1, retry_after_s=0.001, rng=rng) >= 0.001


policies = st.builds(
    Retry,
    max_attempts=st.integers(1, 50),
    initial_delay_s=st.floats(0.0, 100.0, allow_nan=False),
    max_delay_s=st.floats(0.0, 1000.0, allow_nan=False),
    multiplier=st.floats(1.0, 10.0, allow_nan=False),
    max_retry_after_s=st.floats(0.0, 10_000.0, allow_nan=False),
)


@given(
    policy=policies,
    attempts_made=st.integers(0, 200),
    retry_after_s=st.none() | st.floats(0.0, 1e7, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_delay_is_never_negative_and_never_above_the_larger_of_ceiling_and_retry_after(
    policy, attempts_made, retry_after_s, seed
):
    delay = backoff_delay_s(
        policy, attempts_made, retry_after_s=retry_after_s, rng=random.Random(seed)
    )
    floor = 0.0 if retry_after_s is None else min(retry_after_s, policy.max_retry_after_s)
    assert 0.0 <= delay <= max(policy.max_delay_s, floor)
    assert delay <= max(ceiling(policy, attempts_made), floor) + 1e-9
    assert delay >= floor


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"initial_delay_s": -1.0}, "must not be negative"),
        ({"max_delay_s": -0.5}, "must not be negative"),
        ({"multiplier": 0.5}, "multiplier must be >= 1"),
        ({"deadline_s": 0.0}, "deadline_s must be positive"),
        ({"deadline_s": -3.0}, "deadline_s must be positive"),
    ],
)
def test_invalid_retry_policy_is_refused_at_declaration(options, message):
    with pytest.raises(DefinitionError, match=message):
        Retry(**options)


def test_no_retry_means_a_single_attempt():
    assert NO_RETRY.max_attempts == 1
