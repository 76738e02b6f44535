"""Response bodies of the API (pydantic), and conversions from records.

JSON stored as text (inputs, outputs, payloads, decisions) is returned decoded. Nothing
here carries a password hash, a token hash or a session id.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from surefoot.domain.access import ApiTokenRecord, Role, UserRecord
from surefoot.domain.audit import AuditEntry
from surefoot.domain.breaker import Breaker
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import AttemptRecord, DeadLetter, JournalEntry, ReviewItem, RunRecord
from surefoot.ops.runs import Timeline

T = TypeVar("T")


def decoded(text: str | None) -> Any:
    """Stored JSON text as a value; text that is not JSON stays text."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int | None = Field(None, description="All matches; null where counting is costly.")
    limit: int
    offset: int


class Run(BaseModel):
    run_id: str
    workflow: str
    queue: str
    status: str
    inputs: Any
    output: Any = None
    error: Any = None
    idempotency_key: str | None = None
    priority: int = 0
    partition_key: str | None = None
    correlation_id: str | None = None
    forked_from_run_id: str | None = None
    forked_at_position: int | None = None
    wait_reason: str | None = None
    waiting_for: str | None = None
    wake_at: datetime | None = None
    cancel_requested: bool = False
    generation: int = 0
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None

    @classmethod
    def of(cls, run: RunRecord) -> Run:
        return cls(
            run_id=run.run_id,
            workflow=run.workflow,
            queue=run.queue,
            status=run.status.value,
            inputs=decoded(run.inputs),
            output=decoded(run.output),
            error=decoded(run.error),
            idempotency_key=run.idempotency_key,
            priority=run.priority,
            partition_key=run.partition_key,
            correlation_id=run.correlation_id,
            forked_from_run_id=run.forked_from_run_id,
            forked_at_position=run.forked_at_position,
            wait_reason=run.wait_reason,
            waiting_for=run.waiting_for,
            wake_at=run.wake_at,
            cancel_requested=run.cancel_requested,
            generation=run.generation,
            created_at=run.created_at,
            updated_at=run.updated_at,
            finished_at=run.finished_at,
        )


class Step(BaseModel):
    position: int
    kind: str
    name: str
    status: str
    output: Any = None
    error: Any = None
    created_at: datetime
    committed_at: datetime | None = None
    wake_at: datetime | None = None

    @classmethod
    def of(cls, entry: JournalEntry) -> Step:
        return cls(
            position=entry.position,
            kind=entry.kind.value,
            name=entry.name,
            status=entry.status.value,
            output=decoded(entry.output),
            error=decoded(entry.error),
            created_at=entry.created_at,
            committed_at=entry.committed_at,
            wake_at=entry.wake_at,
        )


class Attempt(BaseModel):
    position: int
    kind: str
    attempt: int
    generation: int
    step: str
    idempotency_key: str
    outcome: str
    failure_class: FailureClass | None = None
    rule: str | None = None
    route: str | None = None
    decision: str | None = None
    error: Any = None
    worker_id: str | None = None
    started_at: datetime
    finished_at: datetime | None = None

    @classmethod
    def of(cls, a: AttemptRecord) -> Attempt:
        return cls(
            position=a.position,
            kind=a.kind.value,
            attempt=a.attempt,
            generation=a.generation,
            step=a.step,
            idempotency_key=a.idempotency_key,
            outcome=a.outcome.value,
            failure_class=a.failure_class,
            rule=a.rule,
            route=a.route,
            decision=a.decision,
            error=decoded(a.error),
            worker_id=a.worker_id,
            started_at=a.started_at,
            finished_at=a.finished_at,
        )


class Review(BaseModel):
    item_id: str
    run_id: str
    position: int
    kind: str
    title: str
    actions: list[str]
    status: str
    payload: Any = None
    assignee_role: str | None = None
    priority: int = 0
    due_at: datetime | None = None
    decision: Any = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    correlation_id: str | None = None
    created_at: datetime

    @classmethod
    def of(cls, item: ReviewItem) -> Review:
        return cls(
            item_id=item.item_id,
            run_id=item.run_id,
            position=item.position,
            kind=item.kind,
            title=item.title,
            actions=list(item.actions),
            status=item.status.value,
            payload=decoded(item.payload),
            assignee_role=item.assignee_role,
            priority=item.priority,
            due_at=item.due_at,
            decision=decoded(item.decision),
            decided_by=item.decided_by,
            decided_at=item.decided_at,
            correlation_id=item.correlation_id,
            created_at=item.created_at,
        )


class RunTimeline(BaseModel):
    run: Run
    steps: list[Step]
    attempts: list[Attempt]
    reviews: list[Review]

    @classmethod
    def of(cls, view: Timeline) -> RunTimeline:
        return cls(
            run=Run.of(view.run),
            steps=[Step.of(j) for j in view.journal],
            attempts=[Attempt.of(a) for a in view.attempts],
            reviews=[Review.of(r) for r in view.reviews],
        )


class DeadLetterEntry(BaseModel):
    run_id: str
    generation: int
    workflow: str
    failure_class: FailureClass
    reason: str
    attempts: int
    status: str
    dead_lettered_at: datetime
    last_error: Any = None
    position: int | None = None
    step: str | None = None
    compensated: bool = False
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterEntry:
        return cls(
            run_id=d.run_id,
            generation=d.generation,
            workflow=d.workflow,
            failure_class=d.failure_class,
            reason=d.reason,
            attempts=d.attempts,
            status=d.status.value,
            dead_lettered_at=d.dead_lettered_at,
            last_error=decoded(d.last_error),
            position=d.position,
            step=d.step,
            compensated=d.compensated,
            resolved_at=d.resolved_at,
            resolved_by=d.resolved_by,
            resolution=d.resolution,
        )


class BulkOutcome(BaseModel):
    matched: int
    done: int
    dry_run: bool
    refused: dict[str, str] = Field(default_factory=dict)


class Queue(BaseModel):
    name: str
    paused: bool
    ready: int
    concurrency: int | None = None
    worker_concurrency: int | None = None
    max_depth: int | None = None


class BreakerState(BaseModel):
    key: str
    state: str
    consecutive_failures: int
    opened_at: datetime | None = None

    @classmethod
    def of(cls, b: Breaker) -> BreakerState:
        return cls(
            key=b.key,
            state=b.state.value,
            consecutive_failures=b.consecutive_failures,
            opened_at=b.opened_at,
        )


class AuditItem(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: str
    before: Any = None
    after: Any = None
    reason: str | None = None
    correlation_id: str | None = None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditItem:
        return cls(**{name: getattr(entry, name) for name in cls.model_fields})


class AuditPage(BaseModel):
    items: list[AuditItem]
    next_after_seq: int | None = Field(None, description="Pass as after_seq for the next page.")


class ChainReport(BaseModel):
    intact: bool
    head_seq: int
    head_hash: str | None = None
    problems: list[dict[str, Any]]


class User(BaseModel):
    username: str
    role: Role
    disabled: bool
    password_set: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, u: UserRecord) -> User:
        return cls(
            username=u.username,
            role=u.role,
            disabled=u.disabled,
            password_set=u.password_hash is not None,
            created_at=u.created_at,
            updated_at=u.updated_at,
        )


class Token(BaseModel):
    token_id: str
    name: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, t: ApiTokenRecord) -> Token:
        return cls(
            token_id=t.token_id,
            name=t.name,
            role=t.role,
            created_by=t.created_by,
            created_at=t.created_at,
            expires_at=t.expires_at,
            last_used_at=t.last_used_at,
            revoked_at=t.revoked_at,
        )


class NewToken(Token):
    secret: str = Field(description="Shown this once; only its hash is kept.")
