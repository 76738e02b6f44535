"""Circuit breaker per integration key: a pure state machine over stored state.

closed --(threshold consecutive transient failures)--> open
open --(cooldown passed)--> half_open: exactly one probe attempt is let through
half_open --(probe succeeds)--> closed; --(probe fails)--> open again
A non-transient failure means the dependency answered, so it counts as a success here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5
    cooldown_s: float = 30.0


@dataclass(frozen=True)
class Breaker:
    key: str
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    probe_owner: str | None = None  # the attempt let through while half-open

    def admits(self, now: datetime, policy: BreakerPolicy) -> bool:
        """Whether a new attempt may start now (a half-open breaker admits one probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        reopens_at = self.reopens_at(policy)
        if self.state is BreakerState.OPEN:
            return reopens_at is not None and now >= reopens_at
        # half-open: one probe at a time; a probe whose worker died is replaced after a cooldown
        return self.probe_owner is None or (reopens_at is not None and now >= reopens_at)

    def reopens_at(self, policy: BreakerPolicy) -> datetime | None:
        if self.opened_at is None:
            return None
        return self.opened_at + timedelta(seconds=policy.cooldown_s)

    def start_probe(self, owner: str, now: datetime) -> Breaker:
        """Let one attempt through; ``opened_at`` now dates the probe."""
        return replace(self, state=BreakerState.HALF_OPEN, probe_owner=owner, opened_at=now)

    def on_success(self) -> Breaker:
        return Breaker(self.key)

    def on_transient_failure(self, now: datetime, policy: BreakerPolicy) -> Breaker:
        failures = self.consecutive_failures + 1
        if self.state is BreakerState.HALF_OPEN or failures >= policy.failure_threshold:
            return Breaker(self.key, BreakerState.OPEN, failures, now, None)
        return replace(self, consecutive_failures=failures)
