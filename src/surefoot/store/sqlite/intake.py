"""What callers write and read about runs: intake (idempotency, debounce, bounded queues),
lookups and history, events."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from surefoot.domain.queues import QueueSpec
from surefoot.domain.records import (
    AttemptRecord,
    AuditRecord,
    EventRecord,
    History,
    JournalEntry,
    NewRun,
    RunRecord,
)
from surefoot.domain.status import (
    RunStatus,
)
from surefoot.errors import (
    IdempotencyKeyConflictError,
    RunAlreadyFinishedError,
    RunNotFoundError,
)
from surefoot.store.intake import (
    NEW_RUN_COLUMNS,
    PendingDepths,
    RunIntake,
    new_run_record,
    new_run_values,
    run_created,
)
from surefoot.store.sqlite import rows
from surefoot.store.sqlite.base import SQLiteBase
from surefoot.store.sqlite.values import ts

T = TypeVar("T")


_INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(NEW_RUN_COLUMNS)})"
    f" VALUES ({', '.join(['?'] * len(NEW_RUN_COLUMNS))})"
)


class IntakeMixin(SQLiteBase, RunIntake[sqlite3.Cursor]):
    # -- intake -------------------------------------------------------------------------
    def create_run(
        self, new: NewRun, now: datetime, actor: str, *, queue: QueueSpec | None = None
    ) -> tuple[RunRecord, bool]:
        queues = {new.queue: queue} if queue is not None else None
        return self._write(lambda cur: self._create_runs_txn(cur, [new], now, actor, queues)[0])

    def create_runs(
        self,
        news: Sequence[NewRun],
        now: datetime,
        actor: str,
        *,
        queues: Mapping[str, QueueSpec] | None = None,
    ) -> list[tuple[RunRecord, bool]]:
        return self._write(lambda cur: self._create_runs_txn(cur, news, now, actor, queues))

    def _create_run_txn(
        self,
        cur: sqlite3.Cursor,
        new: NewRun,
        now: datetime,
        actor: str,
        queue: QueueSpec | None,
        depths: PendingDepths,
    ) -> tuple[RunRecord, bool]:
        if new.idempotency_key is not None:
            row = cur.execute(
                "SELECT * FROM runs WHERE idempotency_key = ?", (new.idempotency_key,)
            ).fetchone()
            if row is not None:
                existing = rows.run_from_row(row)
                if existing.workflow != new.workflow or existing.inputs_hash != new.inputs_hash:
                    raise IdempotencyKeyConflictError(
                        f"idempotency key {new.idempotency_key!r} already belongs to run "
                        f"{existing.run_id} of {existing.workflow} with other inputs"
                    )
                return existing, False
        if new.debounce_key is not None:
            debounced = self._debounce_txn(cur, new, now, actor)
            if debounced is not None:
                return debounced, False
        if queue is not None:
            depths.admit(new.queue, queue)
        self._insert_run_txn(cur, new, now)
        self._audit_txn(
            cur,
            run_created(new, actor),
            now,
        )
        return new_run_record(new, now), True  # as inserted: nothing to read back

    @staticmethod
    def _depths(cur: sqlite3.Cursor) -> PendingDepths:
        def count(name: str) -> int:
            row = cur.execute(
                "SELECT COUNT(*) FROM runs WHERE queue = ? AND status = 'pending'", (name,)
            ).fetchone()
            return int(row[0])

        return PendingDepths(count)

    def _debounce_txn(
        self, cur: sqlite3.Cursor, new: NewRun, now: datetime, actor: str
    ) -> RunRecord | None:
        """A start within the window of a run not yet started replaces that run's inputs
        and pushes its start back; the caller gets the same run."""
        row = cur.execute(
            "SELECT * FROM runs WHERE workflow = ? AND debounce_key = ? AND status = 'waiting'"
            " AND wait_reason = 'debounce' ORDER BY created_at LIMIT 1",
            (new.workflow, new.debounce_key),
        ).fetchone()
        if row is None:
            return None
        cur.execute(
            "UPDATE runs SET inputs = ?, inputs_hash = ?, wake_at = ?, updated_at = ?"
            " WHERE run_id = ?",
            (new.inputs, new.inputs_hash, ts(new.not_before), ts(now), row["run_id"]),
        )
        self._audit_txn(
            cur,
            AuditRecord(
                actor,
                "run.debounced",
                "run",
                row["run_id"],
                {"wake_at": row["wake_at"]},
                {"wake_at": ts(new.not_before), "inputs_hash": new.inputs_hash},
                correlation_id=row["correlation_id"],
            ),
            now,
        )
        return rows.run_from_row(
            cur.execute("SELECT * FROM runs WHERE run_id = ?", (row["run_id"],)).fetchone()
        )

    @staticmethod
    def _insert_run_txn(cur: sqlite3.Cursor, new: NewRun, now: datetime) -> None:
        cur.execute(_INSERT_RUN, new_run_values(new, now, ts))

    # -- lookup -------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._read(
            lambda cur: cur.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        )
        return rows.run_from_row(row) if row else None

    def find_run(self, run_id_or_key: str) -> RunRecord | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM runs WHERE run_id = ? OR idempotency_key = ? "
                "ORDER BY run_id = ? DESC LIMIT 1",
                (run_id_or_key, run_id_or_key, run_id_or_key),
            ).fetchone()
        )
        return rows.run_from_row(row) if row else None

    def load_history(self, run_id: str) -> History:
        return self._read(lambda cur: self._histories_txn(cur, [run_id])[run_id])

    @staticmethod
    def _histories_txn(cur: sqlite3.Cursor, run_ids: Sequence[str]) -> dict[str, History]:
        """The histories of these runs: three reads however many runs (a claim loads the
        histories of all the runs it takes inside its write transaction)."""
        histories = {run_id: History() for run_id in run_ids}
        marks = ",".join("?" * len(histories))
        ids = tuple(histories)
        for row in cur.execute(f"SELECT * FROM journal WHERE run_id IN ({marks})", ids):
            histories[row["run_id"]].journal[row["position"]] = rows.journal_from_row(row)
        for row in cur.execute(
            f"SELECT * FROM attempts WHERE run_id IN ({marks}) AND kind = 'step'"
            " ORDER BY run_id, position, attempt",
            ids,
        ):
            history = histories[row["run_id"]]
            history.attempts.setdefault(row["position"], []).append(rows.attempt_from_row(row))
        for row in cur.execute(
            f"SELECT * FROM review_items WHERE run_id IN ({marks}) ORDER BY run_id, created_at",
            ids,
        ):
            item = rows.review_from_row(row)
            histories[item.run_id].reviews.setdefault(item.position, []).append(item)
        return histories

    def list_attempts(self, run_id: str) -> list[AttemptRecord]:
        return self._read(
            lambda cur: [
                rows.attempt_from_row(r)
                for r in cur.execute(
                    "SELECT * FROM attempts WHERE run_id = ?"
                    " ORDER BY started_at, position, attempt",
                    (run_id,),
                )
            ]
        )

    def list_journal(self, run_id: str) -> list[JournalEntry]:
        return self._read(
            lambda cur: [
                rows.journal_from_row(r)
                for r in cur.execute(
                    "SELECT * FROM journal WHERE run_id = ? ORDER BY position", (run_id,)
                )
            ]
        )

    # -- events -----------------------------------------------------------------------------------
    def send_event(
        self,
        run_id_or_key: str,
        name: str,
        payload: str | None,
        *,
        event_key: str | None,
        now: datetime,
        actor: str,
    ) -> EventRecord:
        def txn(cur: sqlite3.Cursor) -> EventRecord:
            row = cur.execute(
                "SELECT * FROM runs WHERE run_id = ? OR idempotency_key = ? "
                "ORDER BY run_id = ? DESC LIMIT 1",
                (run_id_or_key, run_id_or_key, run_id_or_key),
            ).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run has id or idempotency key {run_id_or_key!r}")
            run = rows.run_from_row(row)
            if event_key is not None:
                dup = cur.execute(
                    "SELECT * FROM events WHERE run_id = ? AND event_key = ?",
                    (run.run_id, event_key),
                ).fetchone()
                if dup is not None:
                    return rows.event_from_row(dup)
            if run.status.is_terminal:
                raise RunAlreadyFinishedError(
                    f"run {run.run_id} is {run.status}; the event {name!r} was not stored"
                )
            cur.execute(
                "INSERT INTO events (run_id, name, event_key, payload, sent_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (run.run_id, name, event_key, payload, ts(now)),
            )
            seq = cur.lastrowid
            if run.status is RunStatus.WAITING and run.waiting_for == name:
                cur.execute(
                    "UPDATE runs SET wake_at = ?, updated_at = ? WHERE run_id = ?",
                    (ts(now), ts(now), run.run_id),
                )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "event.received",
                    "run",
                    run.run_id,
                    None,
                    {"event": name, "event_seq": seq, "event_key": event_key},
                    correlation_id=run.correlation_id,
                ),
                now,
            )
            return rows.event_from_row(
                cur.execute("SELECT * FROM events WHERE event_seq = ?", (seq,)).fetchone()
            )

        return self._write(txn)
