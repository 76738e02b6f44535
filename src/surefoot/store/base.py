"""The Store protocol: every durable read and write Surefoot makes.

Methods that act for a running execution take its :class:`Lease` and are
*fenced*: if another worker has taken the run over, they raise
``LeaseLostError`` and write nothing. Every state change appends its audit
entry in the same transaction, so the log and the state cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from surefoot.domain.audit import AuditEntry
from surefoot.domain.breaker import Breaker
from surefoot.domain.queues import QueueSpec, RateLimit
from surefoot.domain.records import (
    AttemptRecord,
    AttemptResult,
    AuditRecord,
    DeadLetter,
    DeadLetterFilter,
    EventRecord,
    History,
    JournalEntry,
    Lease,
    NewRun,
    ReviewItem,
    RunFilter,
    RunRecord,
)
from surefoot.domain.status import AttemptKind, ReviewStatus, RunStatus

T = TypeVar("T")

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ClaimedRun:
    run: RunRecord
    lease: Lease
    history: History
    interrupted: tuple[AttemptRecord, ...] = ()


@dataclass(frozen=True)
class Suspension:
    """How a run unwinds: to a durable wait, or parked for a person."""

    status: RunStatus
    wait_reason: str
    wake_at: datetime | None = None
    waiting_for: str | None = None
    journal: JournalEntry | None = None
    review: ReviewItem | None = None
    attempt: tuple[int, AttemptKind, int, AttemptResult] | None = None


@dataclass(frozen=True)
class RunEnd:
    status: RunStatus
    output: str | None = None
    error: str | None = None
    dead_letter: DeadLetter | None = None


class Store(Protocol):
    url: str

    # -- schema ------------------------------------------------------------------
    def schema_version(self) -> int: ...
    def migrate(self) -> int: ...
    def close(self) -> None: ...

    # -- runs: intake and lookup ---------------------------------------------------
    def create_run(
        self, new: NewRun, now: datetime, actor: str, *, queue: QueueSpec | None = None
    ) -> tuple[RunRecord, bool]:
        """Commit a run. The same idempotency key returns the existing run; a debounce key
        with a run not yet started updates that run; a queue at ``max_depth`` raises
        ``BackPressureError`` and stores nothing."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None: ...
    def find_run(self, run_id_or_key: str) -> RunRecord | None: ...
    def list_runs(self, run_filter: RunFilter) -> list[RunRecord]: ...
    def count_runs(self, run_filter: RunFilter) -> int: ...
    def load_history(self, run_id: str) -> History: ...
    def list_attempts(self, run_id: str) -> list[AttemptRecord]: ...
    def list_journal(self, run_id: str) -> list[JournalEntry]: ...

    # -- wake-ups -------------------------------------------------------------------
    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from any thread) when a run may have become claimable; returns
        a function that stops the subscription. Stores without notifications return a
        no-op and workers rely on polling."""
        ...

    # -- workers and leases ---------------------------------------------------------
    def register_worker(
        self, worker_id: str, hostname: str, pid: int, queues: Sequence[str], now: datetime
    ) -> None: ...
    def worker_stopped(self, worker_id: str, now: datetime) -> None: ...
    def claim(
        self,
        worker_id: str,
        *,
        workflows: Sequence[str],
        queues: Sequence[str] | None,
        limit: int,
        lease_s: float,
        now: datetime,
        caps: Mapping[str, int] | None = None,
        global_concurrency: Mapping[str, int] | None = None,
    ) -> list[ClaimedRun]:
        """Lease up to ``limit`` claimable runs. ``caps``: at most this many from each named
        queue (the worker's own limits); ``global_concurrency``: runs of a queue executing
        at once across all workers."""
        ...

    def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_s: float, now: datetime
    ) -> tuple[set[str], set[str]]: ...
    def release(self, lease: Lease, now: datetime, *, interrupt_open_attempts: bool) -> None: ...

    # -- execution (fenced) -----------------------------------------------------------
    def begin_attempt(self, lease: Lease, attempt: AttemptRecord) -> None: ...
    def finish_attempt(
        self,
        lease: Lease,
        *,
        position: int,
        kind: AttemptKind,
        attempt: int,
        result: AttemptResult,
        journal: JournalEntry | None,
        now: datetime,
    ) -> None: ...
    def commit_journal(self, lease: Lease, entry: JournalEntry) -> None: ...
    def consume_event(
        self, lease: Lease, *, position: int, name: str, now: datetime
    ) -> EventRecord | None: ...
    def suspend(self, lease: Lease, suspension: Suspension, now: datetime) -> None: ...
    def finish_run(self, lease: Lease, end: RunEnd, now: datetime) -> None: ...
    def start_compensating(
        self, lease: Lease, reason: str, error: str | None, now: datetime
    ) -> None: ...
    def commit_compensation(
        self,
        lease: Lease,
        *,
        position: int,
        step: str,
        attempt: int,
        output: str | None,
        now: datetime,
    ) -> None: ...
    def compensated_positions(self, run_id: str) -> set[int]: ...
    def update_breaker(
        self, key: str, change: Callable[[Breaker], tuple[Breaker, T]], now: datetime
    ) -> T: ...
    def get_breakers(self) -> list[Breaker]: ...
    def take_token(self, limit: RateLimit, now: datetime) -> float:
        """Take a token from a shared bucket: 0.0 if granted, else seconds to wait."""
        ...

    # -- events -----------------------------------------------------------------------
    def send_event(
        self,
        run_id_or_key: str,
        name: str,
        payload: str | None,
        *,
        event_key: str | None,
        now: datetime,
        actor: str,
    ) -> EventRecord: ...

    # -- operators ----------------------------------------------------------------------
    def list_dead_letters(self, dl_filter: DeadLetterFilter) -> list[DeadLetter]: ...
    def get_dead_letter(self, run_id: str) -> DeadLetter | None: ...
    def redrive(self, run_id: str, *, actor: str, reason: str | None, now: datetime) -> None: ...
    def discard(self, run_id: str, *, actor: str, reason: str, now: datetime) -> None: ...
    def list_reviews(
        self, status: ReviewStatus | None, limit: int, offset: int
    ) -> list[ReviewItem]: ...
    def get_review(self, item_id: str) -> ReviewItem | None: ...
    def decide_review(
        self, item_id: str, *, decision: str, actor: str, reason: str | None, now: datetime
    ) -> ReviewItem: ...
    def request_cancel(
        self, run_id: str, *, actor: str, reason: str | None, now: datetime
    ) -> RunRecord: ...
    def fork_run(
        self, source_run_id: str, *, at_position: int, new: NewRun, actor: str, now: datetime
    ) -> RunRecord: ...
    def set_queue_paused(
        self, queue: str, *, paused: bool, actor: str, reason: str | None, now: datetime
    ) -> None: ...
    def list_queues(self) -> list[tuple[str, bool, int]]: ...

    # -- audit ----------------------------------------------------------------------------
    def append_audit(self, record: AuditRecord, now: datetime) -> None: ...
    def audit_entries(
        self, *, after_seq: int, limit: int, entity_id: str | None = None
    ) -> list[AuditEntry]: ...
    def audit_head(self) -> tuple[int, str] | None: ...
