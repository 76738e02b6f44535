"""Builders and checks shared by the Store contract tests. Times are explicit, never the clock."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from surefoot.domain.audit import verify_chain
from surefoot.domain.records import (
    AttemptRecord,
    AttemptResult,
    DeadLetterFilter,
    JournalEntry,
    Lease,
    NewRun,
    RunFilter,
)
from surefoot.domain.status import (
    AttemptKind,
    AttemptOutcome,
    DeadLetterStatus,
    JournalKind,
    JournalStatus,
)
from surefoot.store.base import ClaimedRun, StepCommit, Store

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE_S = 10.0
ACTOR = "tester"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_run(
    workflow: str = "flow",
    *,
    queue: str = "default",
    inputs: Any = None,
    idempotency_key: str | None = None,
    priority: int = 0,
    partition_key: str | None = None,
) -> NewRun:
    text = json.dumps(inputs if inputs is not None else {"n": 1}, separators=(",", ":"))
    return NewRun(
        run_id=uuid.uuid4().hex,
        workflow=workflow,
        queue=queue,
        inputs=text,
        inputs_hash=hashlib.sha256(text.encode()).hexdigest(),
        idempotency_key=idempotency_key,
        priority=priority,
        partition_key=partition_key,
        correlation_id=uuid.uuid4().hex,
    )


def claim_one(store: Store, worker_id: str, now: datetime, **options: Any) -> ClaimedRun:
    options.setdefault("workflows", ["flow"])
    options.setdefault("queues", None)
    options.setdefault("limit", 1)
    options.setdefault("lease_s", LEASE_S)
    claimed = store.claim(worker_id, now=now, **options)
    assert len(claimed) == 1, f"expected one claimable run, got {len(claimed)}"
    return claimed[0]


def claim_none(store: Store, worker_id: str, now: datetime, **options: Any) -> None:
    options.setdefault("workflows", ["flow"])
    options.setdefault("queues", None)
    options.setdefault("limit", 10)
    options.setdefault("lease_s", LEASE_S)
    assert store.claim(worker_id, now=now, **options) == []


def attempt(lease: Lease, now: datetime, *, position: int = 1, number: int = 1) -> AttemptRecord:
    return AttemptRecord(
        run_id=lease.run_id,
        position=position,
        kind=AttemptKind.STEP,
        attempt=number,
        generation=0,
        step="charge",
        idempotency_key=f"{lease.run_id}:{position}",
        outcome=AttemptOutcome.RUNNING,
        started_at=now,
        inputs='{"amount":1}',
        worker_id=lease.worker_id,
    )


def committed_step(run_id: str, now: datetime, *, position: int = 1) -> JournalEntry:
    return JournalEntry(
        run_id,
        position,
        JournalKind.STEP,
        "charge",
        JournalStatus.COMMITTED,
        now,
        output='"ok"',
        committed_at=now,
    )


SUCCEEDED = AttemptResult(AttemptOutcome.SUCCEEDED)


def held_steps(lease: Lease, positions: tuple[int, ...] = (1, 2, 3)) -> tuple[StepCommit, ...]:
    """Successful step ends a worker holds for the run's end, their starts not written."""
    return tuple(
        StepCommit(
            attempt(lease, at(p), position=p),
            start_written=False,
            result=SUCCEEDED,
            journal=committed_step(lease.run_id, at(p + 0.5), position=p),
            at=at(p + 0.5),
        )
        for p in positions
    )


def commit_first_step(
    store: Store, lease: Lease, started: datetime, ended: datetime, *, number: int = 1
) -> None:
    """The run's step 1 attempted (attempt ``number``) and committed ("ok")."""
    store.begin_attempt(lease, attempt(lease, started, number=number))
    store.finish_attempt(
        lease,
        position=1,
        kind=AttemptKind.STEP,
        attempt=number,
        result=SUCCEEDED,
        journal=committed_step(lease.run_id, ended),
        now=ended,
    )


def state(store: Store, run_id: str) -> dict[str, Any]:
    """Everything the protocol can read about one run and the shared logs."""
    return {
        "run": store.get_run(run_id),
        "attempts": store.list_attempts(run_id),
        "journal": store.list_journal(run_id),
        "history": store.load_history(run_id),
        "audit_head": store.audit_head(),
        "dead_letters": store.list_dead_letters(DeadLetterFilter(status=None)),
        "runs": store.count_runs(RunFilter()),
        "compensated": store.compensated_positions(run_id),
    }


def assert_chain_intact(store: Store) -> int:
    """The audit chain verifies against its head; returns how many entries it has."""
    entries = store.audit_entries(after_seq=0, limit=1_000_000)
    head = store.audit_head()
    problems = verify_chain(
        entries, head_seq=head[0] if head else None, head_hash=head[1] if head else None
    )
    assert problems == [], problems
    return len(entries)


def open_dead_letters(store: Store) -> list[str]:
    return [
        d.run_id for d in store.list_dead_letters(DeadLetterFilter(status=DeadLetterStatus.OPEN))
    ]
