"""What a leased execution writes: attempts, journal, consumed events, waits, the run's end.

Every method here is fenced: it locks the run row and checks the lease first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from surefoot.domain.records import (
    AttemptRecord,
    AttemptResult,
    AuditRecord,
    EventRecord,
    JournalEntry,
    Lease,
    ReviewItem,
)
from surefoot.domain.status import AttemptKind, JournalKind, JournalStatus, RunStatus
from surefoot.store.base import (
    AttemptEnd,
    RunEnd,
    StepCommit,
    Suspension,
    attempt_end_columns,
    dead_letter_columns,
    run_finished_record,
)
from surefoot.store.postgres import rows
from surefoot.store.postgres.base import FINISHED_CHANNEL, Cursor, dumps_json, iso, ts
from surefoot.store.postgres.leases import LeaseMixin, actor_of
from surefoot.store.step_writes import StepWrites


class ExecutionMixin(LeaseMixin, StepWrites[Cursor]):
    # -- attempts and journal -------------------------------------------------------------
    def begin_attempt(
        self, lease: Lease, attempt: AttemptRecord, *, after: AttemptEnd | None = None
    ) -> None:
        def body(cur: Cursor, correlation_id: str | None, _status: str) -> None:
            if after is not None:
                self._finish_attempt_txn(
                    cur,
                    lease,
                    after.position,
                    after.kind,
                    after.attempt,
                    after.result,
                    after.at,
                    correlation_id,
                )
            self._begin_attempt_txn(cur, lease, attempt, correlation_id)

        self._write_fenced(lease, body)

    def commit_steps(self, lease: Lease, steps: Sequence[StepCommit]) -> None:
        def body(cur: Cursor, correlation_id: str | None, _status: str) -> None:
            for step in steps:
                self._commit_step_txn(cur, lease, step, correlation_id)

        self._write_fenced(lease, body)

    def _begin_attempt_txn(
        self,
        cur: Cursor,
        lease: Lease,
        attempt: AttemptRecord,
        correlation_id: str | None,
        *,
        ended: tuple[AttemptResult, datetime] | None = None,
    ) -> None:
        """Insert the attempt's row: ``running``, or as it ``ended`` (result, time)."""
        self._later_txn(
            cur,
            "INSERT INTO attempts (run_id, position, kind, attempt, generation, step,"
            " idempotency_key, inputs, outcome, failure_class, rule, route, decision, error,"
            " worker_id, started_at, finished_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
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
                ts(attempt.started_at),
                ts(ended[1]) if ended else None,
            ),
        )
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
    ) -> None:
        def body(cur: Cursor, correlation_id: str | None, _status: str) -> None:
            self._finish_attempt_txn(
                cur, lease, position, kind, attempt, result, now, correlation_id
            )
            if journal is not None:
                self._upsert_journal_txn(cur, journal)

        self._write_fenced(lease, body)

    def _finish_attempt_txn(
        self,
        cur: Cursor,
        lease: Lease,
        position: int,
        kind: AttemptKind,
        attempt: int,
        result: AttemptResult,
        now: datetime,
        correlation_id: str | None,
    ) -> None:
        self._later_txn(
            cur,
            "UPDATE attempts SET outcome = %s, failure_class = %s, rule = %s, route = %s,"
            " decision = %s, error = %s, finished_at = %s"
            " WHERE run_id = %s AND position = %s AND kind = %s AND attempt = %s",
            (
                *attempt_end_columns((result, now)),
                ts(now),
                lease.run_id,
                position,
                kind.value,
                attempt,
            ),
        )
        self._audit_attempt_finished_txn(cur, lease, position, attempt, result, now, correlation_id)

    def _audit_attempt_finished_txn(
        self,
        cur: Cursor,
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

    def _upsert_journal_txn(self, cur: Cursor, entry: JournalEntry) -> None:
        self._later_txn(
            cur,
            "INSERT INTO journal (run_id, position, kind, name, status, output, error, wake_at,"
            " created_at, committed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, position) DO UPDATE SET status = excluded.status,"
            " output = excluded.output, error = excluded.error, wake_at = excluded.wake_at,"
            " committed_at = excluded.committed_at",
            (
                entry.run_id,
                entry.position,
                entry.kind.value,
                entry.name,
                entry.status.value,
                entry.output,
                entry.error,
                ts(entry.wake_at),
                ts(entry.created_at),
                ts(entry.committed_at),
            ),
        )

    def commit_journal(self, lease: Lease, entry: JournalEntry) -> None:
        self._write_fenced(lease, lambda cur, _cid, _status: self._upsert_journal_txn(cur, entry))

    def consume_event(
        self, lease: Lease, *, position: int, name: str, now: datetime
    ) -> EventRecord | None:
        def txn(cur: Cursor) -> EventRecord | None:
            run = self._fence_txn(cur, lease)
            row = cur.execute(
                "SELECT * FROM events WHERE run_id = %s AND name = %s"
                " AND consumed_position IS NULL ORDER BY event_seq LIMIT 1",
                (lease.run_id, name),
            ).fetchone()
            if row is None:
                return None
            cur.execute(
                "UPDATE events SET consumed_position = %s WHERE event_seq = %s",
                (position, row["event_seq"]),
            )
            self._upsert_journal_txn(
                cur,
                JournalEntry(
                    lease.run_id,
                    position,
                    JournalKind.WAIT,
                    name,
                    JournalStatus.COMMITTED,
                    now,
                    output=row["payload"],
                    committed_at=now,
                ),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(lease.worker_id),
                    "event.consumed",
                    "run",
                    lease.run_id,
                    None,
                    {"event": name, "event_seq": row["event_seq"], "position": position},
                    correlation_id=run["correlation_id"],
                ),
                now,
            )
            return rows.event_from_row(row)

        return self._write(txn, concurrent=True)

    # -- waits and ends -------------------------------------------------------------------------
    def suspend(self, lease: Lease, suspension: Suspension, now: datetime) -> None:
        def txn(cur: Cursor) -> None:
            row = self._fence_txn(cur, lease)
            if suspension.attempt is not None:
                position, kind, attempt, result = suspension.attempt
                self._finish_attempt_txn(
                    cur, lease, position, kind, attempt, result, now, row["correlation_id"]
                )
            if suspension.journal is not None:
                self._upsert_journal_txn(cur, suspension.journal)
            if suspension.review is not None:
                self._insert_review_txn(cur, suspension.review)
            wake_at = suspension.wake_at
            status = suspension.status
            if row["cancel_requested"]:
                status, wake_at = RunStatus.PENDING, None  # carry out the cancel at once
            if (
                suspension.waiting_for is not None
                and cur.execute(
                    "SELECT 1 FROM events WHERE run_id = %s AND name = %s AND "
                    "consumed_position IS NULL",
                    (lease.run_id, suspension.waiting_for),
                ).fetchone()
            ):
                wake_at = now  # the event arrived while we were deciding to wait
            cur.execute(
                "UPDATE runs SET status = %s, wait_reason = %s, wake_at = %s, waiting_for = %s,"
                " lease_owner = NULL, lease_expires_at = NULL, deliveries = 0,"
                " updated_at = %s WHERE run_id = %s",
                (
                    status.value,
                    suspension.wait_reason,
                    ts(wake_at),
                    suspension.waiting_for,
                    ts(now),
                    lease.run_id,
                ),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(lease.worker_id),
                    "run.suspended",
                    "run",
                    lease.run_id,
                    {"status": row["status"]},
                    {
                        "status": status.value,
                        "wait_reason": suspension.wait_reason,
                        "wake_at": None if wake_at is None else iso(wake_at),
                    },
                    correlation_id=row["correlation_id"],
                ),
                now,
            )
            if status is RunStatus.PENDING or (wake_at is not None and wake_at <= now):
                self._notify_txn(cur, row["queue"])

        self._write(txn, concurrent=True)
        self._forget_run(lease.run_id)  # the run leaves this worker

    def _insert_review_txn(self, cur: Cursor, item: ReviewItem) -> None:
        cur.execute(
            "INSERT INTO review_items (item_id, run_id, position, generation, kind, title,"
            " payload, actions, status, assignee_role, priority, due_at, created_at,"
            " correlation_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                item.item_id,
                item.run_id,
                item.position,
                item.generation,
                item.kind,
                item.title,
                item.payload,
                dumps_json(list(item.actions)),
                item.status.value,
                item.assignee_role,
                item.priority,
                ts(item.due_at),
                ts(item.created_at),
                item.correlation_id,
            ),
        )
        self._audit_txn(
            cur,
            AuditRecord(
                "system",
                "review.created",
                "review",
                item.item_id,
                None,
                {
                    "kind": item.kind,
                    "run_id": item.run_id,
                    "position": item.position,
                    "actions": list(item.actions),
                },
                correlation_id=item.correlation_id,
            ),
            item.created_at,
        )

    def finish_run(self, lease: Lease, end: RunEnd, now: datetime) -> None:
        # The lease is checked with the end's writes, and the run's status before it (for
        # the audit entry) is the one this worker last gave it; if the run turns out to be
        # in another, the end is made again with the run read first.
        # A run claimed with no open review item can have none now: nothing to close.
        closes_reviews = self._may_have_open_reviews(lease.run_id)
        self._write_fenced(
            lease,
            partial(self._finish_run_txn, lease, end, now, closes_reviews),
            same_status=True,
        )
        self._forget_run(lease.run_id)  # the run leaves this worker

    def _finish_run_txn(
        self,
        lease: Lease,
        end: RunEnd,
        now: datetime,
        closes_reviews: bool,
        cur: Cursor,
        correlation_id: str | None,
        status: str,
    ) -> None:
        for step in end.steps:
            self._commit_step_txn(cur, lease, step, correlation_id)
        self._later_txn(
            cur,
            "UPDATE runs SET status = %s, output = %s, error = %s, finished_at = %s,"
            " lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL,"
            " wake_at = NULL, waiting_for = NULL, updated_at = %s WHERE run_id = %s",
            (end.status.value, end.output, end.error, ts(now), ts(now), lease.run_id),
        )
        if closes_reviews:
            self._later_txn(
                cur,
                "UPDATE review_items SET status = 'cancelled' WHERE run_id = %s"
                " AND status = 'open'",
                (lease.run_id,),
            )
        dead = end.dead_letter
        if dead is not None:
            self._later_txn(
                cur,
                "INSERT INTO dead_letters (run_id, generation, workflow, failure_class,"
                " reason, last_error, position, step, attempts, compensated, status,"
                " dead_lettered_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'open', %s)",
                (*dead_letter_columns(dead), ts(now)),
            )
        self._audit_txn(cur, run_finished_record(lease, end, status, correlation_id), now)
        # Heard, after the COMMIT, by clients waiting for the result (subscribe_changes).
        self._notify_txn(cur, lease.run_id, channel=FINISHED_CHANNEL)
