"""What a leased execution writes: attempts, journal, consumed events, waits, the run's end.

Every method here is fenced: it locks the run row and checks the lease first.
"""

from __future__ import annotations

import json
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
    actor_of,
    attempt_end_columns,
    dead_letter_columns,
    run_finished_record,
)
from surefoot.store.postgres import rows
from surefoot.store.postgres.base import FINISHED_CHANNEL, Cursor, dumps_json, iso, ts
from surefoot.store.postgres.leases import LeaseMixin
from surefoot.store.step_writes import (
    ATTEMPT_COLUMNS,
    JOURNAL_COLUMNS,
    JOURNAL_CONFLICT,
    StepWrites,
    attempt_values,
    journal_values,
)


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
            self._commit_steps_txn(cur, lease, steps, correlation_id)

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
        self._later_txn(cur, _INSERT_ATTEMPT, attempt_values(attempt, ended, ts))
        self._audit_attempt_started_txn(cur, lease, attempt, correlation_id)

    def _together(self, steps: Sequence[StepCommit]) -> bool:
        # One upsert cannot change a journal row twice: such steps go one by one.
        return len(steps) > 1 and len({step.journal.position for step in steps}) == len(steps)

    def _stamp(self, value: datetime | None) -> object:
        return ts(value)

    def _insert_attempts_txn(self, cur: Cursor, values: Sequence[tuple[object, ...]]) -> None:
        # One JSON array in one parameter: a row of placeholders per step would pass
        # psycopg's prepared-statement cache limit, one array per column costs more to send.
        self._later_txn(cur, _INSERT_ATTEMPTS, _rows_json(values))

    def _upsert_journals_txn(self, cur: Cursor, values: Sequence[tuple[object, ...]]) -> None:
        self._later_txn(cur, _UPSERT_JOURNALS, _rows_json(values))

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

    def _upsert_journal_txn(self, cur: Cursor, entry: JournalEntry) -> None:
        self._later_txn(cur, _UPSERT_JOURNAL, journal_values(entry, ts))

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
        self._commit_steps_txn(cur, lease, end.steps, correlation_id)
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


_INSERT_ATTEMPT = f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES ({', '.join(['%s'] * 17)})"
# Several rows in one statement, as one JSON array of rows in one parameter (as the
# audit append sends its entries, and for the same reasons: one text however many rows,
# parsed once by the driver and prepared once by the server; arrays per column cost the
# driver more to send than the statements they replace).
_INSERT_ATTEMPTS = (
    f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) SELECT e->>0, (e->>1)::int, e->>2,"
    " (e->>3)::int, (e->>4)::int, e->>5, e->>6, e->>7, e->>8, e->>9, e->>10, e->>11, e->>12,"
    " e->>13, e->>14, (e->>15)::timestamptz, (e->>16)::timestamptz"
    " FROM jsonb_array_elements(%s::jsonb) AS queued_rows (e)"
)
_UPSERT_JOURNAL = (
    f"INSERT INTO journal ({JOURNAL_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})" + JOURNAL_CONFLICT
)
_UPSERT_JOURNALS = (
    f"INSERT INTO journal ({JOURNAL_COLUMNS}) SELECT e->>0, (e->>1)::int, e->>2, e->>3,"
    " e->>4, e->>5, e->>6, (e->>7)::timestamptz, (e->>8)::timestamptz, (e->>9)::timestamptz"
    " FROM jsonb_array_elements(%s::jsonb) AS queued_rows (e)" + JOURNAL_CONFLICT
)


def _rows_json(rows: Sequence[tuple[object, ...]]) -> list[str]:
    """Rows as the one parameter of a statement that reads them from a JSON array."""
    return [json.dumps(rows, separators=(",", ":"), default=_iso)]


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")
