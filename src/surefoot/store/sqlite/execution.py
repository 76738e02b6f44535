"""What a running execution writes, fenced by its lease: attempts, journal, events
consumed, suspensions, run ends, compensation, breakers and rate limits."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from surefoot.domain.breaker import Breaker
from surefoot.domain.queues import RateLimit, take_token
from surefoot.domain.records import (
    AttemptRecord,
    AttemptResult,
    AuditRecord,
    EventRecord,
    JournalEntry,
    Lease,
    ReviewItem,
)
from surefoot.domain.status import (
    AttemptKind,
    AttemptOutcome,
    JournalKind,
    JournalStatus,
    RunStatus,
)
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
from surefoot.store.sqlite import rows
from surefoot.store.sqlite.leases import LeasesMixin
from surefoot.store.sqlite.values import dt_required, dumps_json, ts
from surefoot.store.step_writes import (
    ATTEMPT_COLUMNS,
    JOURNAL_COLUMNS,
    JOURNAL_CONFLICT,
    StepWrites,
    attempt_values,
    journal_values,
)

T = TypeVar("T")


_INSERT_ATTEMPT = f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES ({', '.join(['?'] * 17)})"
_UPSERT_JOURNAL = (
    f"INSERT INTO journal ({JOURNAL_COLUMNS}) VALUES ({', '.join(['?'] * 10)})" + JOURNAL_CONFLICT
)


class ExecutionMixin(LeasesMixin, StepWrites[sqlite3.Cursor]):
    # -- attempts and journal -------------------------------------------------------------------
    def begin_attempt(
        self, lease: Lease, attempt: AttemptRecord, *, after: AttemptEnd | None = None
    ) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            row = self._fence_txn(cur, lease)
            if after is not None:
                self._finish_attempt_txn(
                    cur,
                    lease,
                    after.position,
                    after.kind,
                    after.attempt,
                    after.result,
                    after.at,
                    row["correlation_id"],
                )
            self._begin_attempt_txn(cur, lease, attempt, row["correlation_id"])

        self._write(txn)

    def commit_steps(self, lease: Lease, steps: Sequence[StepCommit]) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            row = self._fence_txn(cur, lease)
            self._commit_steps_txn(cur, lease, steps, row["correlation_id"])

        self._write(txn)

    def _begin_attempt_txn(
        self,
        cur: sqlite3.Cursor,
        lease: Lease,
        attempt: AttemptRecord,
        correlation_id: str | None,
        *,
        ended: tuple[AttemptResult, datetime] | None = None,
    ) -> None:
        """Insert the attempt's row: ``running``, or as it ``ended`` (result, time)."""
        cur.execute(_INSERT_ATTEMPT, attempt_values(attempt, ended, ts))
        self._audit_attempt_started_txn(cur, lease, attempt, correlation_id)

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
        def txn(cur: sqlite3.Cursor) -> None:
            row = self._fence_txn(cur, lease)
            self._finish_attempt_txn(
                cur, lease, position, kind, attempt, result, now, row["correlation_id"]
            )
            if journal is not None:
                self._upsert_journal_txn(cur, journal)

        self._write(txn)

    def _finish_attempt_txn(
        self,
        cur: sqlite3.Cursor,
        lease: Lease,
        position: int,
        kind: AttemptKind,
        attempt: int,
        result: AttemptResult,
        now: datetime,
        correlation_id: str | None,
    ) -> None:
        cur.execute(
            "UPDATE attempts SET outcome = ?, failure_class = ?, rule = ?, route = ?,"
            " decision = ?, error = ?, finished_at = ?"
            " WHERE run_id = ? AND position = ? AND kind = ? AND attempt = ?",
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

    @staticmethod
    def _upsert_journal_txn(cur: sqlite3.Cursor, entry: JournalEntry) -> None:
        cur.execute(_UPSERT_JOURNAL, journal_values(entry, ts))

    def _insert_attempts_txn(
        self, cur: sqlite3.Cursor, values: Sequence[tuple[object, ...]]
    ) -> None:
        cur.executemany(_INSERT_ATTEMPT, values)

    def _upsert_journals_txn(
        self, cur: sqlite3.Cursor, values: Sequence[tuple[object, ...]]
    ) -> None:
        # Row by row in order, a position repeated included: as one upsert each.
        cur.executemany(_UPSERT_JOURNAL, values)

    def _stamp(self, value: datetime | None) -> object:
        return ts(value)

    def commit_journal(self, lease: Lease, entry: JournalEntry) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            self._fence_txn(cur, lease)
            self._upsert_journal_txn(cur, entry)

        self._write(txn)

    def consume_event(
        self, lease: Lease, *, position: int, name: str, now: datetime
    ) -> EventRecord | None:
        def txn(cur: sqlite3.Cursor) -> EventRecord | None:
            run = self._fence_txn(cur, lease)
            row = cur.execute(
                "SELECT * FROM events WHERE run_id = ? AND name = ? AND consumed_position IS NULL"
                " ORDER BY event_seq LIMIT 1",
                (lease.run_id, name),
            ).fetchone()
            if row is None:
                return None
            cur.execute(
                "UPDATE events SET consumed_position = ? WHERE event_seq = ?",
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

        return self._write(txn)

    def suspend(self, lease: Lease, suspension: Suspension, now: datetime) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
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
                    "SELECT 1 FROM events WHERE run_id = ? AND name = ? AND "
                    "consumed_position IS NULL",
                    (lease.run_id, suspension.waiting_for),
                ).fetchone()
            ):
                wake_at = now  # the event arrived while we were deciding to wait
            cur.execute(
                "UPDATE runs SET status = ?, wait_reason = ?, wake_at = ?, waiting_for = ?,"
                " lease_owner = NULL, lease_expires_at = NULL, deliveries = 0, updated_at = ?"
                " WHERE run_id = ?",
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
                        "wake_at": ts(wake_at),
                    },
                    correlation_id=row["correlation_id"],
                ),
                now,
            )

        self._write(txn)

    def _insert_review_txn(self, cur: sqlite3.Cursor, item: ReviewItem) -> None:
        cur.execute(
            "INSERT INTO review_items (item_id, run_id, position, generation, kind, title,"
            " payload, actions, status, assignee_role, priority, due_at, created_at,"
            " correlation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        def txn(cur: sqlite3.Cursor) -> None:
            row = self._fence_txn(cur, lease)
            self._commit_steps_txn(cur, lease, end.steps, row["correlation_id"])
            cur.execute(
                "UPDATE runs SET status = ?, output = ?, error = ?, finished_at = ?,"
                " lease_owner = NULL, lease_expires_at = NULL, wait_reason = NULL,"
                " wake_at = NULL, waiting_for = NULL, updated_at = ? WHERE run_id = ?",
                (end.status.value, end.output, end.error, ts(now), ts(now), lease.run_id),
            )
            cur.execute(
                "UPDATE review_items SET status = 'cancelled' WHERE run_id = ? AND status = 'open'",
                (lease.run_id,),
            )
            dead = end.dead_letter
            if dead is not None:
                cur.execute(
                    "INSERT INTO dead_letters (run_id, generation, workflow, failure_class,"
                    " reason, last_error, position, step, attempts, compensated, status,"
                    " dead_lettered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                    (*dead_letter_columns(dead), ts(now)),
                )
            self._audit_txn(
                cur, run_finished_record(lease, end, row["status"], row["correlation_id"]), now
            )

        self._write(txn)

    # -- compensation ---------------------------------------------------------------------------
    def start_compensating(
        self, lease: Lease, reason: str, error: str | None, now: datetime
    ) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            row = self._fence_txn(cur, lease)
            if row["status"] == "compensating":
                return
            cur.execute(
                "UPDATE runs SET status = 'compensating', error = ?, updated_at = ?"
                " WHERE run_id = ?",
                (error, ts(now), lease.run_id),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(lease.worker_id),
                    "run.compensating",
                    "run",
                    lease.run_id,
                    {"status": row["status"]},
                    {"status": "compensating"},
                    reason=reason,
                    correlation_id=row["correlation_id"],
                ),
                now,
            )

        self._write(txn)

    def commit_compensation(
        self,
        lease: Lease,
        *,
        position: int,
        step: str,
        attempt: int,
        output: str | None,
        now: datetime,
    ) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            row = self._fence_txn(cur, lease)
            self._finish_attempt_txn(
                cur,
                lease,
                position,
                AttemptKind.COMPENSATION,
                attempt,
                AttemptResult(AttemptOutcome.SUCCEEDED),
                now,
                row["correlation_id"],
            )
            cur.execute(
                "INSERT INTO compensations (run_id, position, step, status, output,"
                " committed_at) VALUES (?, ?, ?, 'committed', ?, ?)",
                (lease.run_id, position, step, output, ts(now)),
            )

        self._write(txn)

    def compensated_positions(self, run_id: str) -> set[int]:
        return self._read(
            lambda cur: {
                r[0]
                for r in cur.execute(
                    "SELECT position FROM compensations WHERE run_id = ?", (run_id,)
                )
            }
        )

    # -- breakers ---------------------------------------------------------------------------------
    def update_breaker(
        self, key: str, change: Callable[[Breaker], tuple[Breaker, T]], now: datetime
    ) -> T:
        def txn(cur: sqlite3.Cursor) -> T:
            row = cur.execute("SELECT * FROM breakers WHERE breaker_key = ?", (key,)).fetchone()
            current = rows.breaker_from_row(row) if row else Breaker(key)
            updated, result = change(current)
            if updated != current:
                cur.execute(
                    "INSERT INTO breakers (breaker_key, state, consecutive_failures, opened_at,"
                    " probe_owner, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (breaker_key) DO UPDATE SET state = excluded.state,"
                    " consecutive_failures = excluded.consecutive_failures,"
                    " opened_at = excluded.opened_at, probe_owner = excluded.probe_owner,"
                    " updated_at = excluded.updated_at",
                    (
                        key,
                        updated.state.value,
                        updated.consecutive_failures,
                        ts(updated.opened_at),
                        updated.probe_owner,
                        ts(now),
                    ),
                )
                if updated.state != current.state:
                    self._audit_txn(
                        cur,
                        AuditRecord(
                            "system",
                            "breaker.changed",
                            "breaker",
                            key,
                            {"state": current.state.value},
                            {"state": updated.state.value},
                        ),
                        now,
                    )
            return result

        return self._write(txn)

    def take_token(self, limit: RateLimit, now: datetime) -> float:
        """Take one token from the shared bucket; 0.0 if granted, else seconds to wait."""

        def txn(cur: sqlite3.Cursor) -> float:
            row = cur.execute(
                "SELECT tokens, updated_at FROM rate_limits WHERE limit_key = ?", (limit.key,)
            ).fetchone()
            last = None if row is None else dt_required(row[1])
            elapsed = 0.0 if last is None else (now - last).total_seconds()
            level, wait = take_token(limit, None if row is None else float(row[0]), elapsed)
            # A caller whose clock reading predates the last take (it waited for the lock)
            # must not move the bucket's time back, or the next take refills twice.
            stamp = now if last is None else max(now, last)
            cur.execute(
                "INSERT INTO rate_limits (limit_key, tokens, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (limit_key) DO UPDATE SET tokens = excluded.tokens,"
                " updated_at = excluded.updated_at",
                (limit.key, level, ts(stamp)),
            )
            return wait

        return self._write(txn)

    def get_breakers(self) -> list[Breaker]:
        return self._read(
            lambda cur: [
                rows.breaker_from_row(r)
                for r in cur.execute("SELECT * FROM breakers ORDER BY breaker_key")
            ]
        )
