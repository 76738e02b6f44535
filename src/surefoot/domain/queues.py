"""Queue and rate-limit declarations, and the token-bucket arithmetic (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from surefoot.errors import DefinitionError


@dataclass(frozen=True)
class QueueSpec:
    """Limits of one named queue, the same for every worker running the app.

    ``concurrency``: runs of the queue executing at once across all workers.
    ``worker_concurrency``: runs of the queue one worker executes at once.
    ``max_depth``: pending runs the queue may hold; ``start()`` beyond it raises
    ``BackPressureError`` with ``retry_after_s``.
    """

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    max_depth: int | None = None
    retry_after_s: float = 1.0

    def __post_init__(self) -> None:
        for field_name in ("concurrency", "worker_concurrency", "max_depth"):
            value = getattr(self, field_name)
            if value is not None and value < 1:
                raise DefinitionError(f"queue {self.name!r}: {field_name} must be >= 1")
        if self.retry_after_s <= 0:
            raise DefinitionError(f"queue {self.name!r}: retry_after_s must be positive")


@dataclass(frozen=True)
class RateLimit:
    """A token bucket shared by every worker: ``per_s`` tokens a second, at most ``burst``
    saved up. Each attempt of a step declared with ``rate_limit=key`` takes one token."""

    key: str
    per_s: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not self.per_s > 0:
            raise DefinitionError(f"rate limit {self.key!r}: per_s must be positive")
        if self.burst < 1:
            raise DefinitionError(f"rate limit {self.key!r}: burst must be >= 1")


def take_token(limit: RateLimit, tokens: float | None, elapsed_s: float) -> tuple[float, float]:
    """Refill the bucket for ``elapsed_s`` and try to take one token.

    ``tokens`` is the stored level (None: a new, full bucket). Returns the new level
    and the seconds to wait (0.0 when the token was granted).
    """
    level = (
        float(limit.burst)
        if tokens is None
        else min(float(limit.burst), tokens + max(0.0, elapsed_s) * limit.per_s)
    )
    if level >= 1.0:
        return level - 1.0, 0.0
    return level, (1.0 - level) / limit.per_s
