"""What both stores do the same way when they take runs in: the audit entry of a created run,
bounded intake (``max_depth``) counted once per queue per transaction, and a batch of runs
made one by one inside one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Generic, TypeVar

from surefoot.domain.queues import QueueSpec
from surefoot.domain.records import AuditRecord, NewRun, RunRecord
from surefoot.domain.status import RunStatus
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


# The columns a start writes, in the order of :func:`new_run_values`.
NEW_RUN_COLUMNS = (
    "run_id",
    "workflow",
    "queue",
    "status",
    "idempotency_key",
    "inputs_hash",
    "priority",
    "partition_key",
    "debounce_key",
    "wait_reason",
    "wake_at",
    "inputs",
    "correlation_id",
    "forked_from_run_id",
    "forked_at_position",
    "created_at",
    "updated_at",
    "trace_context",
)


def new_run_values(
    new: NewRun, now: datetime, stamp: Callable[[datetime | None], object]
) -> tuple[object, ...]:
    """The values of :data:`NEW_RUN_COLUMNS` for a start of ``new`` at ``now``: the run
    pending, or waiting for its debounce window; ``stamp`` makes a time a store's value."""
    waiting = new.not_before is not None
    return (
        new.run_id,
        new.workflow,
        new.queue,
        "waiting" if waiting else "pending",
        new.idempotency_key,
        new.inputs_hash,
        new.priority,
        new.partition_key,
        new.debounce_key,
        "debounce" if waiting else None,
        stamp(new.not_before),
        new.inputs,
        new.correlation_id,
        new.forked_from_run_id,
        new.forked_at_position,
        stamp(now),
        stamp(now),
        new.trace_context,
    )


def new_run_record(new: NewRun, now: datetime) -> RunRecord:
    """The run a start of ``new`` at ``now`` stores, as the store would read it back:
    pending, or waiting for its debounce window (``not_before``), times in UTC."""
    waiting = new.not_before is not None
    now = now.astimezone(UTC)
    return RunRecord(
        run_id=new.run_id,
        workflow=new.workflow,
        queue=new.queue,
        status=RunStatus.WAITING if waiting else RunStatus.PENDING,
        inputs=new.inputs,
        inputs_hash=new.inputs_hash,
        created_at=now,
        updated_at=now,
        idempotency_key=new.idempotency_key,
        priority=new.priority,
        partition_key=new.partition_key,
        debounce_key=new.debounce_key,
        correlation_id=new.correlation_id,
        forked_from_run_id=new.forked_from_run_id,
        forked_at_position=new.forked_at_position,
        wait_reason="debounce" if waiting else None,
        wake_at=None if new.not_before is None else new.not_before.astimezone(UTC),
        trace_context=new.trace_context,
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
