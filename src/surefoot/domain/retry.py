"""Retry policy and backoff math (exponential, full jitter, Retry-After honoured)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from surefoot.errors import DefinitionError


@dataclass(frozen=True)
class Retry:
    """How often and how patiently a step's ``transient`` failures are retried.

    ``max_attempts`` counts every attempt, the first included. ``deadline_s``
    caps the time from a step's first attempt; no retry is scheduled past it.
    """

    max_attempts: int = 3
    initial_delay_s: float = 0.5
    max_delay_s: float = 60.0
    multiplier: float = 2.0
    deadline_s: float | None = None
    max_retry_after_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DefinitionError(f"Retry.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_delay_s < 0 or self.max_delay_s < 0:
            raise DefinitionError("Retry delays must not be negative")
        if self.multiplier < 1:
            raise DefinitionError(f"Retry.multiplier must be >= 1, got {self.multiplier}")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise DefinitionError("Retry.deadline_s must be positive")


NO_RETRY = Retry(max_attempts=1)


def backoff_delay_s(
    policy: Retry,
    attempts_made: int,
    *,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before the next attempt, after ``attempts_made`` failed ones.

    Full jitter: uniform in ``[0, min(max_delay, initial * multiplier**(n-1))]``.
    A server's ``Retry-After`` is a floor (never retry earlier than asked),
    bounded by ``max_retry_after_s`` so a hostile header cannot park a run for
    a year.
    """
    ceiling = min(
        policy.max_delay_s, policy.initial_delay_s * policy.multiplier ** max(0, attempts_made - 1)
    )
    draw = (rng or _RNG).uniform(0.0, ceiling)
    if retry_after_s is not None:
        draw = max(draw, min(retry_after_s, policy.max_retry_after_s))
    return draw


_RNG = random.SystemRandom()
