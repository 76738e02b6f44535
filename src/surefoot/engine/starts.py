"""Many runs started in one commit: :class:`Start`, one run's call and options.

``App.start_many`` takes a list of them (or plain tuples of positional arguments) for one
workflow and commits every run in one transaction, so a batch taken in at once (a file of
invoices, a page of webhook deliveries) costs one commit instead of one per run. Either all
of them are stored or, on any error, none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from surefoot.errors import WorkflowError

MAX_START_MANY = 1000  # runs per call: one transaction holds the store's write lock


@dataclass(frozen=True)
class Start:
    """One run of ``App.start_many``: the workflow's arguments and this run's own options
    (each as in ``App.start``; ``priority`` None takes the batch's)."""

    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    _: KW_ONLY
    idempotency_key: str | None = None
    partition_key: str | None = None
    priority: int | None = None
    correlation_id: str | None = None


def as_start(item: Start | Sequence[Any], index: int) -> Start:
    """A :class:`Start`, or a tuple or list of positional arguments made one."""
    if isinstance(item, Start):
        return item
    if isinstance(item, (tuple, list)):
        return Start(args=tuple(item))
    raise WorkflowError(
        f"start_many item {index}: expected a surefoot.Start or a tuple of positional "
        f"arguments, got {type(item).__name__}"
    )
