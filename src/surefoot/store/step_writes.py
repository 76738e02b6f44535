"""How both stores write a step attempt's end, composed from their own statements.

Each store supplies the statements (``_begin_attempt_txn``, ``_finish_attempt_txn``,
``_upsert_journal_txn``, ``_audit_txn``) for its cursor type; this mixin
puts them together the same way for both, so that step ends
(:class:`~surefoot.store.base.StepCommit`) committed on their own (``commit_steps``) or with
the run's end mean the same thing on SQLite and PostgreSQL. Several step ends go in two
statements, not two or more per step (``_commit_steps_txn``): the rows of the attempts
whose start was not written in one insert, the journal entries in one upsert, each store
sending a list of rows its own way; the audit entries are appended in the order the steps
ended, as one by one. The columns of attempt and journal rows, and their values, are the
same for both stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from surefoot.domain.records import (
    AttemptRecord,
    AttemptResult,
    AuditRecord,
    JournalEntry,
    Lease,
)
from surefoot.domain.status import AttemptKind
from surefoot.store.base import StepCommit, actor_of, attempt_end_columns

C = TypeVar("C")
Stamp = Callable[[datetime | None], object]  # a time as a store's query parameter

ATTEMPT_COLUMNS = (
    "run_id, position, kind, attempt, generation, step, idempotency_key, inputs, outcome,"
    " failure_class, rule, route, decision, error, worker_id, started_at, finished_at"
)
JOURNAL_COLUMNS = (
    "run_id, position, kind, name, status, output, error, wake_at, created_at, committed_at"
)
# A journal entry written again (a wait resolved, a step committed after its start) keeps
# its kind, name and creation time.
JOURNAL_CONFLICT = (
    " ON CONFLICT (run_id, position) DO UPDATE SET status = excluded.status,"
    " output = excluded.output, error = excluded.error, wake_at = excluded.wake_at,"
    " committed_at = excluded.committed_at"
)


def attempt_values(
    attempt: AttemptRecord, ended: tuple[AttemptResult, datetime] | None, stamp: Stamp
) -> tuple[object, ...]:
    """An attempt row's :data:`ATTEMPT_COLUMNS`: ``running``, or as it ``ended`` (result,
    time); ``stamp`` makes a time a store's value."""
    return (
        attempt.run_id,
        attempt.position,
        attempt.kind.value,
        attempt.attempt,
        attempt.generation,
        attempt.step,
        attempt.idempotency_key,
        attempt.inputs,
        *attempt_end_columns(ended),
        attempt.worker_id,
        stamp(attempt.started_at),
        stamp(ended[1]) if ended else None,
    )


def journal_values(entry: JournalEntry, stamp: Stamp) -> tuple[object, ...]:
    """A journal row's :data:`JOURNAL_COLUMNS`."""
    return (
        entry.run_id,
        entry.position,
        entry.kind.value,
        entry.name,
        entry.status.value,
        entry.output,
        entry.error,
        stamp(entry.wake_at),
        stamp(entry.created_at),
        stamp(entry.committed_at),
    )


class StepWrites(Generic[C]):
    # -- a store's own statements -------------------------------------------------------
    def _begin_attempt_txn(
        self,
        cur: C,
        lease: Lease,
        attempt: AttemptRecord,
        correlation_id: str | None,
        *,
        ended: tuple[AttemptResult, datetime] | None = None,
    ) -> None:
        raise NotImplementedError

    def _finish_attempt_txn(
        self,
        cur: C,
        lease: Lease,
        position: int,
        kind: AttemptKind,
        attempt: int,
        result: AttemptResult,
        now: datetime,
        correlation_id: str | None,
    ) -> None:
        raise NotImplementedError

    def _audit_txn(self, cur: C, record: AuditRecord, now: datetime) -> None:
        raise NotImplementedError

    def _upsert_journal_txn(self, cur: C, entry: JournalEntry) -> None:
        raise NotImplementedError

    def _insert_attempts_txn(self, cur: C, values: Sequence[tuple[object, ...]]) -> None:
        """Attempt rows (:data:`ATTEMPT_COLUMNS`, values of :func:`attempt_values`)."""
        raise NotImplementedError

    def _upsert_journals_txn(self, cur: C, values: Sequence[tuple[object, ...]]) -> None:
        """Journal rows (:data:`JOURNAL_COLUMNS`, values of :func:`journal_values`), in
        order; called only for rows of distinct positions unless ``_together`` allows."""
        raise NotImplementedError

    def _stamp(self, value: datetime | None) -> object:
        """A time as this store's query parameter."""
        raise NotImplementedError

    def _together(self, steps: Sequence[StepCommit]) -> bool:
        """Whether ``steps`` go in one insert and one upsert (a store whose upsert cannot
        change a row twice says no to steps that repeat a journal position)."""
        return len(steps) > 1

    # -- composed the same way for both ------------------------------------------------------
    def _audit_attempt_started_txn(
        self, cur: C, lease: Lease, attempt: AttemptRecord, correlation_id: str | None
    ) -> None:
        self._audit_txn(
            cur,
            AuditRecord(
                actor_of(lease.worker_id),
                "attempt.started",
                "attempt",
                f"{attempt.run_id}/{attempt.position}/{attempt.attempt}",
                None,
                {
                    "step": attempt.step,
                    "kind": attempt.kind.value,
                    "attempt": attempt.attempt,
                    "idempotency_key": attempt.idempotency_key,
                },
                correlation_id=correlation_id,
            ),
            attempt.started_at,
        )

    def _audit_attempt_finished_txn(
        self,
        cur: C,
        lease: Lease,
        position: int,
        attempt: int,
        result: AttemptResult,
        now: datetime,
        correlation_id: str | None,
    ) -> None:
        after: dict[str, str | None] = {"outcome": result.outcome.value}
        if result.failure_class is not None:
            after |= {
                "failure_class": result.failure_class.value,
                "rule": result.rule,
                "route": result.route,
                "decision": result.decision,
            }
        self._audit_txn(
            cur,
            AuditRecord(
                actor_of(lease.worker_id),
                "attempt.finished",
                "attempt",
                f"{lease.run_id}/{position}/{attempt}",
                {"outcome": "running"},
                after,
                correlation_id=correlation_id,
            ),
            now,
        )

    def _record_attempt_txn(
        self,
        cur: C,
        lease: Lease,
        attempt: AttemptRecord,
        result: AttemptResult,
        now: datetime,
        correlation_id: str | None,
    ) -> None:
        """An attempt whose start was not written: one row, written as it ended; both
        audit entries, each at its own time."""
        self._begin_attempt_txn(cur, lease, attempt, correlation_id, ended=(result, now))
        self._audit_attempt_finished_txn(
            cur, lease, attempt.position, attempt.attempt, result, now, correlation_id
        )

    def _commit_steps_txn(
        self, cur: C, lease: Lease, steps: Sequence[StepCommit], correlation_id: str | None
    ) -> None:
        """Step ends left for the run's next write, in order: several in two statements,
        to the same effect as one by one (see the module doc)."""
        if not self._together(steps):
            for step in steps:
                self._commit_step_txn(cur, lease, step, correlation_id)
            return
        stamp = self._stamp
        whole: list[tuple[object, ...]] = []
        for step in steps:
            attempt = step.attempt
            if step.start_written:
                self._finish_written_txn(cur, lease, step, correlation_id)
                continue
            whole.append(attempt_values(attempt, (step.result, step.at), stamp))
            self._audit_attempt_started_txn(cur, lease, attempt, correlation_id)
            self._audit_attempt_finished_txn(
                cur, lease, attempt.position, attempt.attempt, step.result, step.at, correlation_id
            )
        if whole:
            self._insert_attempts_txn(cur, whole)
        self._upsert_journals_txn(cur, [journal_values(step.journal, stamp) for step in steps])

    def _commit_step_txn(
        self, cur: C, lease: Lease, step: StepCommit, correlation_id: str | None
    ) -> None:
        """A step's end left for the run's next write (see :class:`StepCommit`)."""
        if step.start_written:
            self._finish_written_txn(cur, lease, step, correlation_id)
        else:
            self._record_attempt_txn(cur, lease, step.attempt, step.result, step.at, correlation_id)
        self._upsert_journal_txn(cur, step.journal)

    def _finish_written_txn(
        self, cur: C, lease: Lease, step: StepCommit, correlation_id: str | None
    ) -> None:
        """The end of a held step whose start is committed: its row's end, audited."""
        attempt = step.attempt
        self._finish_attempt_txn(
            cur,
            lease,
            attempt.position,
            attempt.kind,
            attempt.attempt,
            step.result,
            step.at,
            correlation_id,
        )
