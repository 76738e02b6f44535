"""What operators read and change: listings, dead-letter, reviews, cancel, fork, queues, audit."""

from __future__ import annotations

import sqlite3
from datetime import datetime

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
    InvalidTransitionError,
    ReviewItemNotFoundError,
    RunNotFoundError,
)
from surefoot.store.sqlite import rows
from surefoot.store.sqlite.execution import ExecutionMixin
from surefoot.store.sqlite.values import ts

# A run "has" a failure class when its dead-letter entry or its latest failed attempt has it.
_FAILURE_CLASS_CLAUSE = (
    "(EXISTS (SELECT 1 FROM dead_letters d WHERE d.run_id = runs.run_id"
    " AND d.failure_class = ?)"
    " OR ? = (SELECT a.failure_class FROM attempts a WHERE a.run_id = runs.run_id"
    " AND a.outcome = 'failed' ORDER BY a.started_at DESC, a.attempt DESC LIMIT 1))"
)


def _run_where(run_filter: RunFilter) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if run_filter.status:
        clauses.append(f"status IN ({','.join('?' * len(run_filter.status))})")
        params.extend(s.value for s in run_filter.status)
    for column in ("workflow", "queue", "correlation_id"):
        value = getattr(run_filter, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if run_filter.failure_class is not None:
        clauses.append(_FAILURE_CLASS_CLAUSE)
        params.extend([run_filter.failure_class.value] * 2)
    if run_filter.created_after is not None:
        clauses.append("created_at >= ?")
        params.append(ts(run_filter.created_after))
    if run_filter.created_before is not None:
        clauses.append("created_at < ?")
        params.append(ts(run_filter.created_before))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


# How many of the newest runs a listing filtered by status looks through first (see
# ``newest_runs_query``).
NEWEST_RUNS = 5_000

_ORDER_PAGE = " ORDER BY created_at DESC, run_id LIMIT ? OFFSET ?"


def run_list_query(run_filter: RunFilter) -> tuple[str, list[object]]:
    """The runs ``run_filter`` asks for, newest first: without a filter, read in that order
    through ``runs_created`` (schema 9) instead of sorting every run."""
    where, params = _run_where(run_filter)
    return f"SELECT * FROM runs{where}{_ORDER_PAGE}", [
        *params,
        run_filter.limit,
        run_filter.offset,
    ]


def newest_runs_query(run_filter: RunFilter) -> tuple[str, list[object]] | None:
    """The page ``run_filter`` asks for, looked for among the newest ``NEWEST_RUNS`` runs
    only; None where the filter has an index that serves it (a workflow, a correlation id),
    or asks for no status that piles up (runs pending, running, waiting are as many as the
    work in hand).

    SQLite plans by rule: for a status it reads every run of that status through
    ``runs_claimable`` and sorts them, which is right for the few that are pending or
    failed and wrong for the million that succeeded (1.4-1.8 s a page). The newest runs come in
    order through ``runs_created``; when the page is found among them, it is the page (the
    runs after them in the order are older than every one of them), else the caller runs
    :func:`run_list_query`.
    """
    if run_filter.workflow or run_filter.correlation_id:
        return None
    if not any(status.is_terminal for status in run_filter.status):
        return None
    where, params = _run_where(run_filter)
    newest = f"(SELECT * FROM runs ORDER BY created_at DESC, run_id LIMIT {NEWEST_RUNS}) AS runs"
    return f"SELECT * FROM {newest}{where}{_ORDER_PAGE}", [
        *params,
        run_filter.limit,
        run_filter.offset,
    ]


class OperatorMixin(ExecutionMixin):
    # -- listings ----------------------------------------------------------------------------------
    def list_runs(self, run_filter: RunFilter) -> list[RunRecord]:
        newest = newest_runs_query(run_filter)
        every = run_list_query(run_filter)

        def read(cur: sqlite3.Cursor) -> list[sqlite3.Row]:
            if newest is not None:
                page = cur.execute(*newest).fetchall()
                if len(page) == run_filter.limit:
                    return page  # a whole page among the newest runs: the same as below
            return cur.execute(*every).fetchall()

        return [rows.run_from_row(r) for r in self._read(read)]

    def count_runs(self, run_filter: RunFilter) -> int:
        where, params = _run_where(run_filter)
        return int(
            self._read(
                lambda cur: cur.execute(f"SELECT COUNT(*) FROM runs{where}", params).fetchone()[0]
            )
        )

    # -- dead-letter -------------------------------------------------------------------------------
    def list_dead_letters(self, dl_filter: DeadLetterFilter) -> list[DeadLetter]:
        clauses: list[str] = []
        params: list[object] = []
        if dl_filter.status is not None:
            clauses.append("status = ?")
            params.append(dl_filter.status.value)
        if dl_filter.workflow is not None:
            clauses.append("workflow = ?")
            params.append(dl_filter.workflow)
        if dl_filter.failure_class is not None:
            clauses.append("failure_class = ?")
            params.append(dl_filter.failure_class.value)
        if dl_filter.reason_contains:
            clauses.append("instr(lower(reason || ' ' || COALESCE(last_error, '')), lower(?)) > 0")
            params.append(dl_filter.reason_contains)
        if dl_filter.after is not None:
            clauses.append("dead_lettered_at >= ?")
            params.append(ts(dl_filter.after))
        if dl_filter.before is not None:
            clauses.append("dead_lettered_at < ?")
            params.append(ts(dl_filter.before))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = (
            f"SELECT * FROM dead_letters{where} ORDER BY dead_lettered_at, run_id LIMIT ? OFFSET ?"
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
                "SELECT * FROM dead_letters WHERE run_id = ? ORDER BY generation DESC LIMIT 1",
                (run_id,),
            ).fetchone()
        )
        return rows.dead_letter_from_row(row) if row else None

    def _open_dead_letter_txn(self, cur: sqlite3.Cursor, run_id: str) -> DeadLetter:
        row = cur.execute(
            "SELECT * FROM dead_letters WHERE run_id = ? AND status = 'open'", (run_id,)
        ).fetchone()
        if row is None:
            if cur.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            raise InvalidTransitionError(f"run {run_id} is not in the dead-letter queue")
        return rows.dead_letter_from_row(row)

    def redrive(self, run_id: str, *, actor: str, reason: str | None, now: datetime) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            dead = self._open_dead_letter_txn(cur, run_id)
            if dead.compensated:
                raise InvalidTransitionError(
                    f"run {run_id} was compensated (its committed effects were undone), so it "
                    "cannot resume where it stopped; fork it with --from-position 1 instead"
                )
            cur.execute(
                "UPDATE dead_letters SET status = 'redriven', resolved_at = ?,"
                " resolved_by = ?, resolution = ? WHERE run_id = ? AND generation = ?",
                (ts(now), actor, reason, run_id, dead.generation),
            )
            cur.execute(
                "UPDATE runs SET status = 'pending', generation = generation + 1, deliveries = 0,"
                " error = NULL, output = NULL, finished_at = NULL, updated_at = ?"
                " WHERE run_id = ?",
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
                    correlation_id=_correlation_id_txn(cur, run_id),
                ),
                now,
            )

        self._write(txn)

    def discard(self, run_id: str, *, actor: str, reason: str, now: datetime) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            dead = self._open_dead_letter_txn(cur, run_id)
            cur.execute(
                "UPDATE dead_letters SET status = 'discarded', resolved_at = ?,"
                " resolved_by = ?, resolution = ? WHERE run_id = ? AND generation = ?",
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
                    correlation_id=_correlation_id_txn(cur, run_id),
                ),
                now,
            )

        self._write(txn)

    # -- reviews -----------------------------------------------------------------------------------
    def list_reviews(
        self, status: ReviewStatus | None, limit: int, offset: int
    ) -> list[ReviewItem]:
        where = " WHERE status = ?" if status else ""
        params: list[object] = [status.value] if status else []
        return self._read(
            lambda cur: [
                rows.review_from_row(r)
                for r in cur.execute(
                    f"SELECT * FROM review_items{where} ORDER BY priority DESC, created_at"
                    " LIMIT ? OFFSET ?",
                    [*params, limit, offset],
                )
            ]
        )

    def get_review(self, item_id: str) -> ReviewItem | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM review_items WHERE item_id = ?", (item_id,)
            ).fetchone()
        )
        return rows.review_from_row(row) if row else None

    def decide_review(
        self, item_id: str, *, decision: str, actor: str, reason: str | None, now: datetime
    ) -> ReviewItem:
        def txn(cur: sqlite3.Cursor) -> ReviewItem:
            row = cur.execute("SELECT * FROM review_items WHERE item_id = ?", (item_id,)).fetchone()
            if row is None:
                raise ReviewItemNotFoundError(f"no review item {item_id!r}")
            if row["status"] != ReviewStatus.OPEN.value:
                raise InvalidTransitionError(
                    f"review item {item_id} is {row['status']}, not open; nothing was changed"
                )
            cur.execute(
                "UPDATE review_items SET status = 'decided', decision = ?,"
                " decided_by = ?, decided_at = ? WHERE item_id = ?",
                (decision, actor, ts(now), item_id),
            )
            cur.execute(
                "UPDATE runs SET status = 'pending', wait_reason = NULL, updated_at = ?"
                " WHERE run_id = ? AND status = 'needs_review'",
                (ts(now), row["run_id"]),
            )
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
            return rows.review_from_row(
                cur.execute("SELECT * FROM review_items WHERE item_id = ?", (item_id,)).fetchone()
            )

        return self._write(txn)

    # -- cancel, fork, queues ----------------------------------------------------------------------
    def request_cancel(
        self, run_id: str, *, actor: str, reason: str | None, now: datetime
    ) -> RunRecord:
        def txn(cur: sqlite3.Cursor) -> RunRecord:
            row = cur.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run {run_id!r}")
            run = rows.run_from_row(row)
            if run.status.is_terminal:
                raise InvalidTransitionError(f"run {run_id} is already {run.status}")
            parked = run.status in (RunStatus.PENDING, RunStatus.WAITING, RunStatus.NEEDS_REVIEW)
            cur.execute(
                "UPDATE runs SET cancel_requested = 1, updated_at = ?,"
                " status = CASE WHEN ? THEN 'pending' ELSE status END,"
                " wake_at = CASE WHEN ? THEN NULL ELSE wake_at END,"
                " wait_reason = CASE WHEN ? THEN 'cancel requested' ELSE wait_reason END,"
                " waiting_for = CASE WHEN ? THEN NULL ELSE waiting_for END WHERE run_id = ?",
                (ts(now), parked, parked, parked, parked, run_id),
            )
            cur.execute(
                "UPDATE review_items SET status = 'cancelled' WHERE run_id = ? AND status = 'open'",
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
            return rows.run_from_row(
                cur.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            )

        return self._write(txn)

    def fork_run(
        self, source_run_id: str, *, at_position: int, new: NewRun, actor: str, now: datetime
    ) -> RunRecord:
        def txn(cur: sqlite3.Cursor) -> RunRecord:
            if (
                cur.execute("SELECT 1 FROM runs WHERE run_id = ?", (source_run_id,)).fetchone()
                is None
            ):
                raise RunNotFoundError(f"no run {source_run_id!r}")
            self._insert_run_txn(cur, new, now)
            cur.execute(
                "INSERT INTO journal (run_id, position, kind, name, status, output, error,"
                " wake_at, created_at, committed_at)"
                " SELECT ?, position, kind, name, status, output, error, wake_at, ?, committed_at"
                " FROM journal WHERE run_id = ? AND position < ? AND status = 'committed'",
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
            return rows.run_from_row(
                cur.execute("SELECT * FROM runs WHERE run_id = ?", (new.run_id,)).fetchone()
            )

        return self._write(txn)

    def set_queue_paused(
        self, queue: str, *, paused: bool, actor: str, reason: str | None, now: datetime
    ) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "INSERT INTO queues (queue, paused, changed_by, changed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (queue) DO UPDATE SET"
                " paused = excluded.paused, changed_by = excluded.changed_by,"
                " changed_at = excluded.changed_at",
                (queue, int(paused), actor, ts(now)),
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

        self._write(txn)

    def list_queues(self) -> list[tuple[str, bool, int]]:
        def read(cur: sqlite3.Cursor) -> list[tuple[str, bool, int]]:
            names = {r[0] for r in cur.execute("SELECT DISTINCT queue FROM runs")}
            paused = {r[0]: bool(r[1]) for r in cur.execute("SELECT queue, paused FROM queues")}
            ready = {
                r[0]: r[1]
                for r in cur.execute(
                    "SELECT queue, COUNT(*) FROM runs WHERE status = 'pending' GROUP BY queue"
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
        sql, params = audit_query(after_seq, limit, entity_id)
        return self._read(lambda cur: [rows.audit_from_row(r) for r in cur.execute(sql, params)])

    def audit_head(self) -> tuple[int, str] | None:
        row = self._read(
            lambda cur: cur.execute(
                "SELECT seq, hash FROM audit_head WHERE only_row = 1"
            ).fetchone()
        )
        return (int(row[0]), str(row[1])) if row else None


def _correlation_id_txn(cur: sqlite3.Cursor, run_id: str) -> str | None:
    row = cur.execute("SELECT correlation_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


def audit_query(
    after_seq: int, limit: int, entity_id: str | None
) -> tuple[str, tuple[object, ...]]:
    """The statement that reads audit entries after ``after_seq``: all of them, or those of
    ``entity_id`` and its attempts (``<run_id>/<position>/<attempt>``)."""
    if entity_id is None:
        return "SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
    # The ids from "<id>/" up to, not including, "<id>0" ("0" follows "/"), compared as
    # bytes, are exactly those that start with "<id>/". Both are looked up in
    # audit_entity_id; "+seq" keeps SQLite from reading the whole log in seq order instead.
    sql = (
        "SELECT * FROM audit_log WHERE +seq > ? AND (entity_id = ?"
        " OR (entity_id >= ? AND entity_id < ?)) ORDER BY seq LIMIT ?"
    )
    return sql, (after_seq, entity_id, f"{entity_id}/", f"{entity_id}0", limit)
