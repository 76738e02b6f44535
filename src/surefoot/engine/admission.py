"""Before an attempt: the step's circuit breaker and its shared rate limit admit it, or
the run unwinds to a durable wait until they will (it holds no thread meanwhile)."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial

from surefoot.domain.breaker import Breaker, BreakerPolicy
from surefoot.domain.status import RunStatus
from surefoot.engine.definitions import StepDef
from surefoot.engine.execution import ExecutionBase
from surefoot.errors import Suspended, WorkflowError
from surefoot.store.base import Suspension

_INLINE_RATE_WAIT_S = 0.05  # shorter waits for a token are slept; longer ones unwind the run


class AdmissionMixin(ExecutionBase):
    @property
    def breaker_policy(self) -> BreakerPolicy:
        settings = self.rt.settings
        return BreakerPolicy(settings.breaker_failure_threshold, settings.breaker_cooldown_s)

    def _idempotency_key(self, position: int) -> str:
        return f"{self.run.run_id}:{position}"

    def _admit_breaker(self, step: StepDef, position: int) -> None:
        key = step.breaker
        if key is None:
            return
        owner = self._idempotency_key(position)
        now = self.rt.clock()

        def change(breaker: Breaker) -> tuple[Breaker, Breaker | None]:
            if not breaker.admits(now, self.breaker_policy):
                return breaker, breaker
            if breaker.state.value != "closed":
                return breaker.start_probe(owner, now), None
            return breaker, None

        blocked = self.fenced(lambda: self.rt.store.update_breaker(key, change, now))
        if blocked is None:
            return
        reopens = blocked.reopens_at(self.breaker_policy) or now + timedelta(
            seconds=self.breaker_policy.cooldown_s
        )
        if blocked.state.value == "half_open":
            reopens = now + timedelta(seconds=min(5.0, self.breaker_policy.cooldown_s))
        self.suspend(Suspension(RunStatus.WAITING, f"breaker:{step.breaker}", wake_at=reopens))
        raise Suspended(self.run.run_id)

    def _admit_rate_limit(self, step: StepDef) -> None:
        """Take a token from the step's shared bucket; a short wait is slept here, a long
        one unwinds the run until a token will be there (the run holds no thread)."""
        if step.rate_limit is None:
            return
        limit = self.rt.rate_limits.get(step.rate_limit)
        if limit is None:
            raise WorkflowError(f"step {step.name}: rate limit {step.rate_limit!r} is not declared")
        while True:
            now = self.rt.clock()
            wait = self.fenced(partial(self.rt.store.take_token, limit, now))
            if wait <= 0:
                return
            if wait > _INLINE_RATE_WAIT_S:
                self.suspend(
                    Suspension(
                        RunStatus.WAITING,
                        f"rate:{limit.key}",
                        wake_at=now + timedelta(seconds=wait),
                    )
                )
                raise Suspended(self.run.run_id)
            time.sleep(wait)
