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

from surefoot.domain.access import ApiTokenRecord, Role, UserRecord, WebSessionRecord
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
from surefoot.domain.stats import (
    AlertEvent,
    AttemptCounts,
    AuditBacklog,
    DeadLetterStats,
    QueueStats,
    ReviewStats,
    WorkerBeat,
)
from surefoot.domain.status import AttemptKind, AttemptOutcome, ReviewStatus, RunStatus
from surefoot.store.migrations import load_migrations

T = TypeVar("T")

# The schema this code reads and writes: the newest migration shipped (both dialects have
# the same numbered list; a test holds them to it).
SCHEMA_VERSION = len(load_migrations("sqlite"))


@dataclass(frozen=True)
class ClaimedRun:
    run: RunRecord
    lease: Lease
    history: History
    interrupted: tuple[AttemptRecord, ...] = ()
    taken_over: bool = False  # the lease of another worker had expired


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
class AttemptEnd:
    """An earlier attempt's end (its classification and route), committed in the same
    transaction as the next attempt's start: see :meth:`Store.begin_attempt`."""

    position: int
    kind: AttemptKind
    attempt: int
    result: AttemptResult
    at: datetime


@dataclass(frozen=True)
class StepCommit:
    """A step attempt's successful end and its journal entry, committed by
    :meth:`Store.commit_steps` or first in :meth:`Store.finish_run`'s transaction: with
    ``start_written`` false the attempt's row is written whole (its start and end both
    audited, the start at ``attempt.started_at``); with it true, only the end of the row
    :meth:`Store.begin_attempt` wrote, as :meth:`Store.finish_attempt` would."""

    attempt: AttemptRecord  # as it began
    start_written: bool  # its start is committed already: only its end is written
    result: AttemptResult
    journal: JournalEntry
    at: datetime


@dataclass(frozen=True)
class RunEnd:
    status: RunStatus
    output: str | None = None
    error: str | None = None
    dead_letter: DeadLetter | None = None
    steps: tuple[StepCommit, ...] = ()  # committed first, in order, in the same transaction


def actor_of(worker_id: str) -> str:
    """How a worker is named as the actor of the audit entries it writes (both stores)."""
    return f"worker:{worker_id}"


def run_finished_record(
    lease: Lease, end: RunEnd, status_before: str, correlation_id: str | None
) -> AuditRecord:
    """The audit entry of a run's end, written by its lease holder (both stores)."""
    dead = end.dead_letter
    return AuditRecord(
        actor_of(lease.worker_id),
        "run.finished",
        "run",
        lease.run_id,
        {"status": status_before},
        {
            "status": end.status.value,
            "dead_lettered": dead is not None,
            "failure_class": dead.failure_class.value if dead else None,
        },
        reason=dead.reason if dead else None,
        correlation_id=correlation_id,
    )


def dead_letter_columns(
    dead: DeadLetter,
) -> tuple[str, int, str, str, str, str | None, int | None, str | None, int, bool]:
    """A new dead letter's run_id, generation, workflow, failure_class, reason,
    last_error, position, step, attempts and compensated columns (both stores)."""
    return (
        dead.run_id,
        dead.generation,
        dead.workflow,
        dead.failure_class.value,
        dead.reason,
        dead.last_error,
        dead.position,
        dead.step,
        dead.attempts,
        dead.compensated,
    )


def attempt_end_columns(
    ended: tuple[AttemptResult, datetime] | None,
) -> tuple[str, str | None, str | None, str | None, str | None, str | None]:
    """An attempt row's outcome, failure_class, rule, route, decision and error: as it
    ``ended`` (result, time), or ``running`` with none of them yet."""
    if ended is None:
        return (AttemptOutcome.RUNNING.value, None, None, None, None, None)
    result = ended[0]
    return (
        result.outcome.value,
        result.failure_class.value if result.failure_class else None,
        result.rule,
        result.route,
        result.decision,
        result.error,
    )


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

    def create_runs(
        self,
        news: Sequence[NewRun],
        now: datetime,
        actor: str,
        *,
        queues: Mapping[str, QueueSpec] | None = None,
    ) -> list[tuple[RunRecord, bool]]:
        """Commit several runs in one transaction, each as :meth:`create_run` would (in
        order, so a repeated idempotency key within ``news`` returns the run made for its
        first use); ``queues``: the specs of bounded queues by name. Any error (a key
        reused with other inputs, a queue that would pass ``max_depth``) stores none."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None: ...
    def find_run(self, run_id_or_key: str) -> RunRecord | None: ...
    def list_runs(self, run_filter: RunFilter) -> list[RunRecord]: ...
    def count_runs(self, run_filter: RunFilter) -> int: ...
    def load_history(self, run_id: str) -> History: ...
    def list_attempts(self, run_id: str) -> list[AttemptRecord]: ...
    def list_journal(self, run_id: str) -> list[JournalEntry]: ...

    # -- wake-ups -------------------------------------------------------------------
    def subscribe_changes(
        self, wake: Callable[[], None], *, waiting: Callable[[], bool] | None = None
    ) -> Callable[[], None] | None:
        """Call ``wake`` (from any thread) whenever another process may have committed
        anything; returns a function that stops the subscription, or None when the store
        cannot tell (callers poll). ``waiting`` tells whether the subscriber waits for
        such news right now (None: always); while no subscriber does, a store that has
        to look for news may look less often."""
        ...

    def subscribe(
        self, wake: Callable[[], None], *, waiting: Callable[[], bool] | None = None
    ) -> Callable[[], None]:
        """Call ``wake`` (from any thread) when a run may have become claimable; returns
        a function that stops the subscription. Stores without notifications return a
        no-op and workers rely on polling. ``waiting`` as for ``subscribe_changes``."""
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

    def next_due(
        self, worker_id: str, *, workflows: Sequence[str], now: datetime
    ) -> datetime | None:
        """The soonest moment after ``now`` at which a run of ``workflows`` becomes
        claimable with no commit to announce it: a durable wait falling due, or the lease
        of another worker expiring (None if none will). A worker with room for more sleeps
        until then rather than until its next poll. Queues and partition keys are not
        looked at: a moment that brings nothing only costs a look."""
        ...

    def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_s: float, now: datetime
    ) -> tuple[set[str], set[str]]: ...
    def release(self, lease: Lease, now: datetime, *, interrupt_open_attempts: bool) -> None: ...

    # -- execution (fenced) -----------------------------------------------------------
    def begin_attempt(
        self, lease: Lease, attempt: AttemptRecord, *, after: AttemptEnd | None = None
    ) -> None:
        """Commit ``attempt``'s start (``running``); with ``after``, first end that earlier
        attempt of the same run, as ``finish_attempt`` would, in the same transaction."""
        ...

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
    def commit_steps(self, lease: Lease, steps: Sequence[StepCommit]) -> None:
        """Commit these step ends (and their journal entries), in order, in one transaction."""
        ...

    def commit_journal(self, lease: Lease, entry: JournalEntry) -> None: ...
    def consume_event(
        self, lease: Lease, *, position: int, name: str, now: datetime
    ) -> EventRecord | None: ...
    def suspend(self, lease: Lease, suspension: Suspension, now: datetime) -> None: ...
    def finish_run(self, lease: Lease, end: RunEnd, now: datetime) -> None:
        """End the run; with ``end.steps``, commit those step ends and journal entries first,
        in order, in the same transaction."""
        ...

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

    # -- statistics and alert events (metrics, alert rules, readiness) ------------------------
    def queue_stats(self) -> list[QueueStats]:
        """Pending runs per queue and the oldest one's creation time."""
        ...

    def dead_letter_stats(self) -> list[DeadLetterStats]: ...
    def count_dead_letters_since(self, since: datetime) -> int: ...
    def review_stats(self, now: datetime) -> list[ReviewStats]: ...
    def worker_beats(self) -> list[WorkerBeat]: ...
    def audit_backlog(self) -> AuditBacklog:
        """Audit entries committed but not yet in the hash chain, as they stand: read
        without chaining them first. Never any on SQLite, whose entries are chained in the
        commit that stores them; on PostgreSQL those a sweep has still to take."""
        ...

    def attempt_counts(self, since: datetime) -> list[AttemptCounts]:
        """Step attempts finished since ``since``, by workflow and failure class."""
        ...

    def record_alert_event(self, event: AlertEvent) -> bool:
        """Append a firing or resolution unless the rule is already in that state; audited.
        True when it was recorded."""
        ...

    def alert_events(self, *, rule: str | None = None, limit: int = 50) -> list[AlertEvent]: ...
    def alert_states(self) -> list[AlertEvent]: ...

    # -- access: users, API tokens, console sessions (secrets only as hashes) -------------
    def create_user(
        self, username: str, password_hash: str | None, role: Role, *, actor: str, now: datetime
    ) -> UserRecord:
        """Raises ``UserExistsError`` for a taken name. Audited (never the hash)."""
        ...

    def get_user(self, username: str) -> UserRecord | None: ...
    def list_users(self) -> list[UserRecord]: ...
    def update_user(
        self,
        username: str,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
        actor: str,
        now: datetime,
    ) -> UserRecord:
        """Change role, disabled flag or password; ends the user's sessions. Audited."""
        ...

    def create_token(self, token: ApiTokenRecord, *, now: datetime) -> None: ...
    def find_token(self, token_hash: str) -> ApiTokenRecord | None: ...
    def list_tokens(self) -> list[ApiTokenRecord]: ...
    def revoke_token(self, token_id: str, *, actor: str, now: datetime) -> ApiTokenRecord: ...
    def touch_token(self, token_id: str, now: datetime) -> None: ...
    def has_credentials(self, now: datetime) -> bool:
        """Whether an enabled user with a password, or a usable API token, exists."""
        ...

    def create_session(self, session: WebSessionRecord, *, replaces: str | None = None) -> None:
        """Store a session, deleting ``replaces`` (a session hash) in the same transaction."""
        ...

    def get_session(self, session_hash: str) -> WebSessionRecord | None: ...
    def touch_session(self, session_hash: str, now: datetime) -> None: ...
    def delete_session(self, session_hash: str) -> None: ...

    # -- workers whose process is gone ------------------------------------------------------
    def register_worker_process(
        self,
        worker_id: str,
        hostname: str,
        pid: int,
        queues: Sequence[str],
        now: datetime,
        *,
        boot_id: str,
        pid_namespace: str,
        process_started: int,
    ) -> None:
        """``register_worker``, also recording what identifies the process on its host: the
        kernel's boot id, the pid namespace and the process's start time (clock ticks after
        boot), so that a worker on the same host can prove the process gone."""
        ...

    def declare_dead_workers(
        self,
        worker_id: str,
        *,
        hostname: str,
        boot_id: str,
        pid_namespace: str,
        is_gone: Callable[[int, int], bool],
        now: datetime,
    ) -> dict[str, list[str]]:
        """Declare dead the workers not stopped that registered with this host, boot and pid
        namespace whose process ``is_gone(pid, process_started)``: each is marked stopped
        and the runs it leased become claimable at once (the next claim takes them over as
        after a lease expiry). Audited. ``is_gone`` must answer False when in doubt. Returns
        the runs freed by worker declared dead."""
        ...
