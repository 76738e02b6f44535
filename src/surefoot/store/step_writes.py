"""How both stores write a step attempt's end, composed from their own statements.

Each store supplies the statements (``_begin_attempt_txn``, ``_finish_attempt_txn``,
``_audit_attempt_finished_txn``, ``_upsert_journal_txn``) for its cursor type; this mixin
puts them together the same way for both, so that step ends
(:class:`~surefoot.store.base.StepCommit`) committed on their own (``commit_steps``) or with
the run's end mean the same thing on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from surefoot.domain.records import AttemptRecord, AttemptResult, JournalEntry, Lease
from surefoot.domain.status import AttemptKind
from surefoot.store.base import StepCommit

C = TypeVar("C")


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
        raise NotImplementedError

    def _upsert_journal_txn(self, cur: C, entry: JournalEntry) -> None:
        raise NotImplementedError

    # -- composed the same way for both ------------------------------------------------------
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

    def _commit_step_txn(
        self, cur: C, lease: Lease, step: StepCommit, correlation_id: str | None
    ) -> None:
        """A step's end left for the run's next write (see :class:`StepCommit`)."""
        attempt = step.attempt
        if step.start_written:
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
        else:
            self._record_attempt_txn(cur, lease, attempt, step.result, step.at, correlation_id)
        self._upsert_journal_txn(cur, step.journal)
