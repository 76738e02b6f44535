"""Plain records of what the store holds. JSON columns stay JSON text here;
the engine decodes them with the right annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from surefoot.domain.failures import FailureClass
from surefoot.domain.status import (
    AttemptKind,
    AttemptOutcome,
    DeadLetterStatus,
    JournalKind,
    JournalStatus,
    ReviewStatus,
    RunStatus,
)


@dataclass(frozen=True)
class NewRun:
    run_id: str
    workflow: str
    queue: str
    inputs: str
    inputs_hash: str
    idempotency_key: str | None = None
    priority: int = 0
    partition_key: str | None = None
    correlation_id: str | None = None
    forked_from_run_id: str | None = None
    forked_at_position: int | None = None
    debounce_key: str | None = None
    not_before: datetime | None = None  # debounce: the run starts no earlier than this
    trace_context: str | None = None  # W3C traceparent of the run's root span


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    workflow: str
    queue: str
    status: RunStatus
    inputs: str
    inputs_hash: str
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None = None
    priority: int = 0
    partition_key: str | None = None
    debounce_key: str | None = None
    output: str | None = None
    error: str | None = None
    correlation_id: str | None = None
    forked_from_run_id: str | None = None
    forked_at_position: int | None = None
    wait_reason: str | None = None
    wake_at: datetime | None = None
    waiting_for: str | None = None
    lease_owner: str | None = None
    lease_epoch: int = 0
    lease_expires_at: datetime | None = None
    generation: int = 0
    cancel_requested: bool = False
    deliveries: int = 0  # claims since the run last reached a durable stop (poison detection)
    finished_at: datetime | None = None
    trace_context: str | None = None  # W3C traceparent of the run's root span


@dataclass(frozen=True)
class Lease:
    """Proof that a worker holds a run. Every write of that run is fenced by it."""

    run_id: str
    worker_id: str
    epoch: int


@dataclass(frozen=True)
class JournalEntry:
    run_id: str
    position: int
    kind: JournalKind
    name: str
    status: JournalStatus
    created_at: datetime
    output: str | None = None
    error: str | None = None
    wake_at: datetime | None = None
    committed_at: datetime | None = None


@dataclass(frozen=True)
class AttemptRecord:
    run_id: str
    position: int
    kind: AttemptKind
    attempt: int
    generation: int
    step: str
    idempotency_key: str
    outcome: AttemptOutcome
    started_at: datetime
    inputs: str | None = None
    failure_class: FailureClass | None = None
    rule: str | None = None
    route: str | None = None
    decision: str | None = None
    error: str | None = None
    worker_id: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class AttemptResult:
    """How an attempt ended, written together with whatever it commits."""

    outcome: AttemptOutcome
    failure_class: FailureClass | None = None
    rule: str | None = None
    route: str | None = None
    decision: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class EventRecord:
    event_seq: int
    run_id: str
    name: str
    payload: str | None
    sent_at: datetime
    event_key: str | None = None
    consumed_position: int | None = None


@dataclass(frozen=True)
class ReviewItem:
    item_id: str
    run_id: str
    position: int
    generation: int
    kind: str
    title: str
    actions: tuple[str, ...]
    status: ReviewStatus
    created_at: datetime
    payload: str | None = None
    assignee_role: str | None = None
    priority: int = 0
    due_at: datetime | None = None
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    run_id: str
    generation: int
    workflow: str
    failure_class: FailureClass
    reason: str
    attempts: int
    status: DeadLetterStatus
    dead_lettered_at: datetime
    last_error: str | None = None
    position: int | None = None
    step: str | None = None
    compensated: bool = False
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class History:
    """Everything replay needs about one run, loaded in one read."""

    journal: dict[int, JournalEntry] = field(default_factory=dict)
    attempts: dict[int, list[AttemptRecord]] = field(default_factory=dict)
    reviews: dict[int, list[ReviewItem]] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """An audit entry to append; the store assigns seq and hashes."""

    actor: str
    action: str
    entity: str
    entity_id: str
    before: Any = None
    after: Any = None
    reason: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class RunFilter:
    status: tuple[RunStatus, ...] = ()
    workflow: str | None = None
    queue: str | None = None
    correlation_id: str | None = None
    # runs whose dead-letter entry, or latest failed attempt, has this class
    failure_class: FailureClass | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class DeadLetterFilter:
    workflow: str | None = None
    failure_class: FailureClass | None = None
    reason_contains: str | None = None
    after: datetime | None = None
    before: datetime | None = None
    status: DeadLetterStatus | None = DeadLetterStatus.OPEN
    limit: int = 100
    offset: int = 0
