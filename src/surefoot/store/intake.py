"""What both stores do the same way when they take runs in: the audit entry of a created run,
bounded intake (``max_depth``) counted once per queue per transaction, and a batch of runs
made one by one inside one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from surefoot.domain.queues import QueueSpec
from surefoot.domain.records import AuditRecord, NewRun, RunRecord
from surefoot.errors import BackPressureError

C = TypeVar("C")


def run_created(new: NewRun, actor: str) -> AuditRecord:
    """The audit entry of a run a start created."""
    return AuditRecord(
        actor,
        "run.created",
        "run",
        new.run_id,
        None,
        {
            "status": "waiting" if new.not_before else "pending",
            "workflow": new.workflow,
            "queue": new.queue,
            "idempotency_key": new.idempotency_key,
            "debounce_key": new.debounce_key,
        },
        correlation_id=new.correlation_id,
    )


class PendingDepths:
    """Pending runs of each bounded queue, within one intake transaction.

    ``count(name)`` asks the store (once per queue: a batch does not count its queue again
    for every run it adds); :meth:`admit` then refuses a run the queue has no room for and
    keeps the count as runs are added."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._depths: dict[str, int] = {}

    def admit(self, name: str, spec: QueueSpec) -> None:
        """Take one place in ``name`` for a run about to be created, or raise
        ``BackPressureError`` (nothing of the transaction is then stored)."""
        if spec.max_depth is None:
            return
        depth = self._depths.get(name)
        if depth is None:
            depth = self._count(name)
        if depth >= spec.max_depth:
            raise BackPressureError(
                f"queue {name!r} holds {depth} pending runs (max_depth={spec.max_depth}); "
                f"nothing was stored, retry after {spec.retry_after_s:g}s",
                queue=name,
                retry_after_s=spec.retry_after_s,
            )
        self._depths[name] = depth + 1

    def release(self, name: str) -> None:
        """The place taken by :meth:`admit` was not used (the run was found, not made)."""
        if name in self._depths:
            self._depths[name] -= 1


class RunIntake(Generic[C]):
    """Runs taken in, composed the same way on both stores from a store's own
    ``_create_run_txn`` and ``_depths`` for its cursor type."""

    def _create_run_txn(
        self,
        cur: C,
        new: NewRun,
        now: datetime,
        actor: str,
        queue: QueueSpec | None,
        depths: PendingDepths,
    ) -> tuple[RunRecord, bool]:
        raise NotImplementedError

    def _depths(self, cur: C) -> PendingDepths:
        raise NotImplementedError

    def _create_runs_txn(
        self,
        cur: C,
        news: Sequence[NewRun],
        now: datetime,
        actor: str,
        queues: Mapping[str, QueueSpec] | None,
    ) -> list[tuple[RunRecord, bool]]:
        """Each run as a single start would make it, in order, in the caller's transaction;
        each bounded queue counted once."""
        specs = queues or {}
        depths = self._depths(cur)
        return [
            self._create_run_txn(cur, new, now, actor, specs.get(new.queue), depths) for new in news
        ]
