"""What operators read and change: listings, dead-letter, reviews, cancel, fork, queues, audit.

Actions that change a run lock its row first (then the rows that hang off it), the
same order the fenced worker writes use, so operators and workers never deadlock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from surefoot.domain.audit import AuditEntry
from surefoot.domain.records import (
    AuditRecord,
    DeadLetter,
    DeadLetterFilter,
    NewRun,
    ReviewItem,
    RunFilter,
    RunRecord,
)
from surefoot.domain.status import ReviewStatus, RunStatus
from surefoot.errors import (
    IdempotencyKeyConflictError,
    InvalidTransitionError,
    ReviewItemNotFoundError,
    RunNotFoundError,
)
from surefoot.store.postgres import rows
from surefoot.store.postgres.base import Cursor, Row, one, ts
from surefoot.store.postgres.failures import FailureMixin

# A run "has" a failure class when its dead-letter entry or its latest failed attempt has it.
_FAILURE_CLASS_CLAUSE = (
    "(EXISTS (SELECT 1 FROM dead_letters d WHERE d.run_id = runs.run_id"
    " AND d.failure_class = %s)"
    " OR %s = (SELECT a.failure_class FROM attempts a WHERE a.run_id = runs.run_id"
    " AND a.outcome = 'failed' ORDER BY a.started_at DESC, a.attempt DESC LIMIT 1))"
)


def _run_where(run_filter: RunFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if run_filter.status:
        clauses.append("status = ANY(%s)")
        params.append([s.value for s in run_filter.status])
    for column in ("workflow", "queue", "correlation_id"):
        value = getattr(run_filter, column)
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if run_filter.failure_class is not None:
        clauses.append(_FAILURE_CLASS_CLAUSE)
        params.extend([run_filter.failure_class.value] * 2)
    if run_filter.created_after is not None:
        clauses.append("created_at >= %s")
        params.append(ts(run_filter.created_after))
    if run_filter.created_before is not None:
        clauses.append("created_at < %s")
        params.append(ts(run_filter.created_before))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _lock_run_txn(cur: Cursor, run_id: str) -> Row:
    row = cur.execute("SELECT * FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)).fetchone()
    if row is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return row


class OperatorMixin(FailureMixin):
    # -- listings ----------------------------------------------------------------------------------
    def list_runs(self, run_filter: RunFilter) -> list[RunRecord]:
        where, params = _run_where(run_filter)
        sql = f"SELECT * FROM runs{where} ORDER BY created_at DESC, run_id LIMIT %s OFFSET %s"
        return self._read(
            lambda cur: [
                rows.run_from_row(r)
                for r in cur.execute(sql, [*params, run_filter.limit, run_filter.offset])
            ]
        )

    def count_runs(self, run_filter: RunFilter) -> int:
        where, params = _run_where(run_filter)
        return int(
            self._read(
                lambda cur: one(cur.execute(f"SELECT COUNT(*) AS n FROM runs{where}", params))["n"]
            )
        )

    # -- dead-letter -------------------------------------------------------------------------------
    def list_dead_letters(self, dl_filter: DeadLetterFilter) -> list[DeadLetter]:
        clauses: list[str] = []
        params: list[Any] = []
        if dl_filter.status is not None:
            clauses.append("status = %s")
            params.append(dl_filter.status.value)
        if dl_filter.workflow is not None:
            clauses.append("workflow = %s")
            params.append(dl_filter.workflow)
        if dl_filter.failure_class is not None:
            clauses.append("failure_class = %s")
            params.append(dl_filter.failure_class.value)
        if dl_filter.reason_contains:
            clauses.append(
                "strpos(lower(reason || ' ' || COALESCE(last_error, '')), lower(%s)) > 0"
            )
            params.append(dl_filter.reason_contains)
        if dl_filter.after is not None:
            clauses.append("dead_lettered_at >= %s")
            params.append(ts(dl_filter.after))
        if dl_filter.before is not None:
            clauses.append("dead_lettered_at < %s")
            params.append(ts(dl_filter.before))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = (
            f"SELECT * FROM dead_letters{where}"
            " ORDER BY dead_lettered_at, run_id LIMIT %s OFFSET %s"
        )
        return self._read(
            lambda cur: [
                rows.dead_letter_from_row(r)
                for r in cur.execute(sql, [*params, dl_filter.limit, dl_filter.offset])
            ]
        )

    def get_dead_letter(self, run_id: str) -> DeadLetter | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM dead_letters WHERE run_id = %s ORDER BY generation DESC LIMIT 1",
                (run_id,),
            ).fetchone()
        )
        return rows.dead_letter_from_row(row) if row else None

    def _open_dead_letter_txn(self, cur: Cursor, run_id: str) -> tuple[Row, DeadLetter]:
        run = _lock_run_txn(cur, run_id)
        row = cur.execute(
            "SELECT * FROM dead_letters WHERE run_id = %s AND status = 'open' FOR UPDATE",
            (run_id,),
        ).fetchone()
        if row is None:
            raise InvalidTransitionError(f"run {run_id} is not in the dead-letter queue")
        return run, rows.dead_letter_from_row(row)

    def redrive(self, run_id: str, *, actor: str, reason: str | None, now: datetime) -> None:
        def txn(cur: Cursor) -> None:
            run, dead = self._open_dead_letter_txn(cur, run_id)
            if dead.compensated:
                raise InvalidTransitionError(
                    f"run {run_id} was compensated (its committed effects were undone), so it "
                    "cannot resume where it stopped; fork it with --from-position 1 instead"
                )
            cur.execute(
                "UPDATE dead_letters SET status = 'redriven', resolved_at = %s,"
                " resolved_by = %s, resolution = %s WHERE run_id = %s AND generation = %s",
                (ts(now), actor, reason, run_id, dead.generation),
            )
            cur.execute(
                "UPDATE runs SET status = 'pending', generation = generation + 1, deliveries = 0,"
                " error = NULL, output = NULL, finished_at = NULL, updated_at = %s"
                " WHERE run_id = %s",
                (ts(now), run_id),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "dead_letter.redriven",
                    "run",
                    run_id,
                    {"status": "failed"},
                    {"status": "pending", "generation": dead.generation + 1},
                    reason=reason,
                    correlation_id=run["correlation_id"],
                ),
                now,
            )
            self._notify_txn(cur, run["queue"])

        self._write(txn)

    def discard(self, run_id: str, *, actor: str, reason: str, now: datetime) -> None:
        def txn(cur: Cursor) -> None:
            run, dead = self._open_dead_letter_txn(cur, run_id)
            cur.execute(
                "UPDATE dead_letters SET status = 'discarded', resolved_at = %s,"
                " resolved_by = %s, resolution = %s WHERE run_id = %s AND generation = %s",
                (ts(now), actor, reason, run_id, dead.generation),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "dead_letter.discarded",
                    "run",
                    run_id,
                    {"dead_letter": "open"},
                    {"dead_letter": "discarded"},
                    reason=reason,
                    correlation_id=run["correlation_id"],
                ),
                now,
            )

        self._write(txn)

    # -- reviews -----------------------------------------------------------------------------------
    def list_reviews(
        self, status: ReviewStatus | None, limit: int, offset: int
    ) -> list[ReviewItem]:
        where = " WHERE status = %s" if status else ""
        params: list[Any] = [status.value] if status else []
        return self._read(
            lambda cur: [
                rows.review_from_row(r)
                for r in cur.execute(
                    f"SELECT * FROM review_items{where} ORDER BY priority DESC, created_at"
                    " LIMIT %s OFFSET %s",
                    [*params, limit, offset],
                )
            ]
        )

    def get_review(self, item_id: str) -> ReviewItem | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM review_items WHERE item_id = %s", (item_id,)
            ).fetchone()
        )
        return rows.review_from_row(row) if row else None

    def decide_review(
        self, item_id: str, *, decision: str, actor: str, reason: str | None, now: datetime
    ) -> ReviewItem:
        def txn(cur: Cursor) -> ReviewItem:
            found = cur.execute(
                "SELECT run_id FROM review_items WHERE item_id = %s", (item_id,)
            ).fetchone()
            if found is None:
                raise ReviewItemNotFoundError(f"no review item {item_id!r}")
            run = _lock_run_txn(cur, found["run_id"])
            row = one(
                cur.execute("SELECT * FROM review_items WHERE item_id = %s FOR UPDATE", (item_id,))
            )
            if row["status"] != ReviewStatus.OPEN.value:
                raise InvalidTransitionError(
                    f"review item {item_id} is {row['status']}, not open; nothing was changed"
                )
            decided = one(
                cur.execute(
                    "UPDATE review_items SET status = 'decided', decision = %s,"
                    " decided_by = %s, decided_at = %s WHERE item_id = %s RETURNING *",
                    (decision, actor, ts(now), item_id),
                )
            )
            cur.execute(
                "UPDATE runs SET status = 'pending', wait_reason = NULL, updated_at = %s"
                " WHERE run_id = %s AND status = 'needs_review'",
                (ts(now), row["run_id"]),
            )
            resumed = cur.rowcount > 0
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "review.decided",
                    "review",
                    item_id,
                    {"status": "open"},
                    {"status": "decided", "decision": decision, "run_id": row["run_id"]},
                    reason=reason,
                    correlation_id=row["correlation_id"],
                ),
                now,
            )
            if resumed:
                self._notify_txn(cur, run["queue"])
            return rows.review_from_row(decided)

        return self._write(txn)

    # -- cancel, fork, queues ----------------------------------------------------------------------
    def request_cancel(
        self, run_id: str, *, actor: str, reason: str | None, now: datetime
    ) -> RunRecord:
        def txn(cur: Cursor) -> RunRecord:
            run = rows.run_from_row(_lock_run_txn(cur, run_id))
            if run.status.is_terminal:
                raise InvalidTransitionError(f"run {run_id} is already {run.status}")
            parked = run.status in (RunStatus.PENDING, RunStatus.WAITING, RunStatus.NEEDS_REVIEW)
            updated = one(
                cur.execute(
                    "UPDATE runs SET cancel_requested = TRUE, updated_at = %(now)s,"
                    " status = CASE WHEN %(parked)s THEN 'pending' ELSE status END,"
                    " wake_at = CASE WHEN %(parked)s THEN NULL ELSE wake_at END,"
                    " wait_reason = CASE WHEN %(parked)s THEN 'cancel requested'"
                    " ELSE wait_reason END,"
                    " waiting_for = CASE WHEN %(parked)s THEN NULL ELSE waiting_for END"
                    " WHERE run_id = %(run_id)s RETURNING *",
                    {"now": ts(now), "parked": parked, "run_id": run_id},
                )
            )
            cur.execute(
                "UPDATE review_items SET status = 'cancelled'"
                " WHERE run_id = %s AND status = 'open'",
                (run_id,),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "run.cancel_requested",
                    "run",
                    run_id,
                    {"status": run.status.value},
                    {"cancel_requested": True},
                    reason=reason,
                    correlation_id=run.correlation_id,
                ),
                now,
            )
            if parked:
                self._notify_txn(cur, run.queue)
            return rows.run_from_row(updated)

        return self._write(txn)

    def fork_run(
        self, source_run_id: str, *, at_position: int, new: NewRun, actor: str, now: datetime
    ) -> RunRecord:
        def txn(cur: Cursor) -> RunRecord:
            if (
                cur.execute("SELECT 1 FROM runs WHERE run_id = %s", (source_run_id,)).fetchone()
                is None
            ):
                raise RunNotFoundError(f"no run {source_run_id!r}")
            created = self._insert_run_txn(cur, new, now)
            if created is None:
                raise IdempotencyKeyConflictError(
                    f"idempotency key {new.idempotency_key!r} already belongs to another run"
                )
            cur.execute(
                "INSERT INTO journal (run_id, position, kind, name, status, output, error,"
                " wake_at, created_at, committed_at)"
                " SELECT %s, position, kind, name, status, output, error, wake_at, %s,"
                " committed_at FROM journal"
                " WHERE run_id = %s AND position < %s AND status = 'committed'",
                (new.run_id, ts(now), source_run_id, at_position),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "run.forked",
                    "run",
                    new.run_id,
                    {"source_run_id": source_run_id},
                    {"status": "pending", "from_position": at_position},
                    correlation_id=new.correlation_id,
                ),
                now,
            )
            self._notify_txn(cur, new.queue)
            return rows.run_from_row(created)

        return self._write(txn)

    def set_queue_paused(
        self, queue: str, *, paused: bool, actor: str, reason: str | None, now: datetime
    ) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO queues (queue, paused, changed_by, changed_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (queue) DO UPDATE SET"
                " paused = excluded.paused, changed_by = excluded.changed_by,"
                " changed_at = excluded.changed_at",
                (queue, paused, actor, ts(now)),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "queue.paused" if paused else "queue.resumed",
                    "queue",
                    queue,
                    None,
                    {"paused": paused},
                    reason=reason,
                ),
                now,
            )
            if not paused:
                self._notify_txn(cur, queue)

        self._write(txn)

    def list_queues(self) -> list[tuple[str, bool, int]]:
        def read(cur: Cursor) -> list[tuple[str, bool, int]]:
            names = {r["queue"] for r in cur.execute("SELECT DISTINCT queue FROM runs")}
            paused = {
                r["queue"]: bool(r["paused"])
                for r in cur.execute("SELECT queue, paused FROM queues")
            }
            ready = {
                r["queue"]: int(r["n"])
                for r in cur.execute(
                    "SELECT queue, COUNT(*) AS n FROM runs WHERE status = 'pending' GROUP BY queue"
                )
            }
            return [(q, paused.get(q, False), ready.get(q, 0)) for q in sorted(names | set(paused))]

        return self._read(read)

    # -- audit -------------------------------------------------------------------------------------
    def append_audit(self, record: AuditRecord, now: datetime) -> None:
        self._write(lambda cur: self._audit_txn(cur, record, now))

    def audit_entries(
        self, *, after_seq: int, limit: int, entity_id: str | None = None
    ) -> list[AuditEntry]:
        if entity_id is None:
            sql = "SELECT * FROM audit_log WHERE seq > %s ORDER BY seq LIMIT %s"
            params: tuple[Any, ...] = (after_seq, limit)
        else:
            sql = (
                "SELECT * FROM audit_log WHERE seq > %s"
                " AND (entity_id = %s OR entity_id LIKE %s) ORDER BY seq LIMIT %s"
            )
            params = (after_seq, entity_id, f"{_like_escape(entity_id)}/%", limit)
        self._sweep_audit()  # every entry committed before this read is in the chain
        return self._read(lambda cur: [rows.audit_from_row(r) for r in cur.execute(sql, params)])

    def audit_head(self) -> tuple[int, str] | None:
        self._sweep_audit()
        row = self._read(
            lambda cur: cur.execute(
                "SELECT seq, hash FROM audit_head WHERE only_row = 1"
            ).fetchone()
        )
        if row is None or int(row["seq"]) == 0:  # the head row exists before any entry
            return None
        return int(row["seq"]), str(row["hash"])


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
