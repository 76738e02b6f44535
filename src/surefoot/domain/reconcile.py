"""What a ``reconcile`` hook answers when asked whether an effect happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Found:
    """The effect happened; ``value`` becomes the step's committed result."""

    value: Any = None


@dataclass(frozen=True)
class NotFound:
    """The effect did not happen; Surefoot retries the step once."""


@dataclass(frozen=True)
class CannotTell:
    """The hook cannot decide; a person is asked."""

    reason: str = "the reconcile hook could not tell"


ReconcileOutcome = Found | NotFound | CannotTell
