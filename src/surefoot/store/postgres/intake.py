"""Intake and lookup: new runs, events sent to runs, workers, history reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from psycopg.rows import dict_row

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
from surefoot.domain.status import RunStatus
from surefoot.errors import (
    IdempotencyKeyConflictError,
    RunAlreadyFinishedError,
    RunNotFoundError,
    StoreError,
)
from surefoot.store.intake import (
    NEW_RUN_COLUMNS,
    PendingDepths,
    RunIntake,
    new_run_record,
    new_run_values,
    run_created,
)
from surefoot.store.postgres import rows
from surefoot.store.postgres.base import Cursor, PostgresBase, Row, iso, one, ts

# A statement sent along with others in one round trip: its cursor, query and parameters.
Sent = tuple[Cursor, str, Sequence[object]]

# A run by its id, or else by its idempotency key (an id match wins).
_RUN_BY_ID_OR_KEY = (
    "SELECT * FROM runs WHERE run_id = %(ref)s OR idempotency_key = %(ref)s"
    " ORDER BY run_id = %(ref)s DESC LIMIT 1"
)


_INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(NEW_RUN_COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(NEW_RUN_COLUMNS))})"
)


def _insert_params(new: NewRun, now: datetime) -> tuple[object, ...]:
    """``_INSERT_RUN``'s parameters."""
    return new_run_values(new, now, ts)


def _needs_nothing_read(new: NewRun, queue: QueueSpec | None) -> bool:
    """Whether starting ``new`` reads nothing first: no idempotency key to look up, no
    debounce window to find, no bounded queue to count."""
    return (
        new.idempotency_key is None
        and new.debounce_key is None
        and (queue is None or queue.max_depth is None)
    )


class IntakeMixin(PostgresBase, RunIntake[Cursor]):
    # -- intake -------------------------------------------------------------------------
    def create_run(
        self, new: NewRun, now: datetime, actor: str, *, queue: QueueSpec | None = None
    ) -> tuple[RunRecord, bool]:
        return self.create_runs([new], now, actor, queues={new.queue: queue} if queue else None)[0]

    def create_runs(
        self,
        news: Sequence[NewRun],
        now: datetime,
        actor: str,
        *,
        queues: Mapping[str, QueueSpec] | None = None,
    ) -> list[tuple[RunRecord, bool]]:
        if all(_needs_nothing_read(new, (queues or {}).get(new.queue)) for new in news):
            return self._write(
                lambda cur: self._insert_runs_txn(cur, news, now, actor),
                concurrent=True,
                blind=True,
            )
        return self._write(lambda cur: self._create_runs_txn(cur, news, now, actor, queues))

    def _insert_runs_txn(
        self, cur: Cursor, news: Sequence[NewRun], now: datetime, actor: str
    ) -> list[tuple[RunRecord, bool]]:
        """New runs that need nothing read first (see :func:`_needs_nothing_read`): their
        inserts are deferred to the end of the transaction, so a lone start costs one
        round trip, its ``COMMIT``'s, and a batch of starts no more. No transaction id is
        read for a lost ``COMMIT`` answer: the first run's id tells (``_created``)."""
        end = self._end_of(cur)
        created: list[tuple[RunRecord, bool]] = []
        for new in news:
            self._later_txn(cur, _INSERT_RUN, _insert_params(new, now))
            self._audit_txn(cur, run_created(new, actor), now)
            self._notify_txn(cur, new.queue)
            created.append((new_run_record(new, now), True))
        if news:
            end.fallible = True
            end.probe = end.probe or news[0].run_id
        return created

    def _create_run_txn(
        self,
        cur: Cursor,
        new: NewRun,
        now: datetime,
        actor: str,
        queue: QueueSpec | None,
        depths: PendingDepths,
    ) -> tuple[RunRecord, bool]:
        existing = self._run_with_key_txn(cur, new)
        if existing is not None:
            return existing, False
        if new.debounce_key is not None:
            debounced = self._debounce_txn(cur, new, now, actor)
            if debounced is not None:
                return debounced, False
        if queue is not None:
            depths.admit(new.queue, queue)
        created = self._insert_run_txn(cur, new, now)
        if created is not None:
            self._note_xid_txn(cur, created["surefoot_xid"])
        if created is None:  # a concurrent start with the same key committed first
            depths.release(new.queue)
            raced = self._run_with_key_txn(cur, new)
            if raced is None:
                raise StoreError(f"run {new.run_id} was neither created nor found")
            return raced, False
        self._audit_txn(
            cur,
            run_created(new, actor),
            now,
        )
        self._notify_txn(cur, new.queue)
        return rows.run_from_row(created), True

    @staticmethod
    def _depths(cur: Cursor) -> PendingDepths:
        """Bounded intake: serialised per queue (a transaction lock taken before the count)
        so concurrent starters cannot overshoot."""

        def count(name: str) -> int:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"surefoot-depth:{name}",))
            found = one(
                cur.execute(
                    "SELECT COUNT(*) AS n FROM runs WHERE queue = %s AND status = 'pending'",
                    (name,),
                )
            )
            return int(found["n"])

        return PendingDepths(count)

    def _debounce_txn(
        self, cur: Cursor, new: NewRun, now: datetime, actor: str
    ) -> RunRecord | None:
        """A start within the window of a run not yet started replaces that run's inputs
        and pushes its start back; the caller gets the same run."""
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            (f"surefoot-debounce:{new.workflow}:{new.debounce_key}",),
        )
        row = cur.execute(
            "SELECT * FROM runs WHERE workflow = %s AND debounce_key = %s AND status = 'waiting'"
            " AND wait_reason = 'debounce' ORDER BY created_at LIMIT 1 FOR UPDATE",
            (new.workflow, new.debounce_key),
        ).fetchone()
        if row is None:
            return None
        updated = one(
            cur.execute(
                "UPDATE runs SET inputs = %s, inputs_hash = %s, wake_at = %s, updated_at = %s"
                " WHERE run_id = %s RETURNING *",
                (new.inputs, new.inputs_hash, ts(new.not_before), ts(now), row["run_id"]),
            )
        )
        self._audit_txn(
            cur,
            AuditRecord(
                actor,
                "run.debounced",
                "run",
                row["run_id"],
                {"wake_at": iso(row["wake_at"]) if row["wake_at"] else None},
                {
                    "wake_at": iso(new.not_before) if new.not_before else None,
                    "inputs_hash": new.inputs_hash,
                },
                correlation_id=row["correlation_id"],
            ),
            now,
        )
        return rows.run_from_row(updated)

    @staticmethod
    def _run_with_key_txn(cur: Cursor, new: NewRun) -> RunRecord | None:
        """The run that already holds ``new``'s idempotency key, if it is the same start."""
        if new.idempotency_key is None:
            return None
        row = cur.execute(
            "SELECT * FROM runs WHERE idempotency_key = %s", (new.idempotency_key,)
        ).fetchone()
        if row is None:
            return None
        existing = rows.run_from_row(row)
        if existing.workflow != new.workflow or existing.inputs_hash != new.inputs_hash:
            raise IdempotencyKeyConflictError(
                f"idempotency key {new.idempotency_key!r} already belongs to run "
                f"{existing.run_id} of {existing.workflow} with other inputs"
            )
        return existing

    @staticmethod
    def _insert_run_txn(cur: Cursor, new: NewRun, now: datetime) -> Row | None:
        """Insert a run (pending, or waiting for its debounce window); ``None`` when its
        idempotency key is already taken."""
        return cur.execute(
            f"{_INSERT_RUN} ON CONFLICT (idempotency_key) DO NOTHING"
            " RETURNING *, pg_current_xact_id()::text AS surefoot_xid",
            _insert_params(new, now),
        ).fetchone()

    # -- lookup -------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._read_row("SELECT * FROM runs WHERE run_id = %s", (run_id,))
        return rows.run_from_row(row) if row else None

    def find_run(self, run_id_or_key: str) -> RunRecord | None:
        row = self._read_row(_RUN_BY_ID_OR_KEY, {"ref": run_id_or_key})
        return rows.run_from_row(row) if row else None

    def load_history(self, run_id: str) -> History:
        return self._read(lambda cur: self._history_txn(cur, run_id))

    @staticmethod
    def _history_txn(cur: Cursor, run_id: str) -> History:
        return IntakeMixin._histories_txn(cur, [run_id])[run_id]

    @staticmethod
    def _histories_txn(
        cur: Cursor, run_ids: Sequence[str], *, along: Sequence[Sent] = ()
    ) -> dict[str, History]:
        """The histories of these runs: three reads in one round trip, sent pipelined and
        fetched after the sync, however many runs. ``along``: statements sent first in
        the same round trip, each on its own cursor, for the caller to fetch afterwards
        (the reads see what they wrote)."""
        histories = {run_id: History() for run_id in run_ids}
        ids = list(run_ids)
        conn = cur.connection
        with (
            conn.cursor(row_factory=dict_row) as attempts,
            conn.cursor(row_factory=dict_row) as reviews,
        ):
            with conn.pipeline():
                for other, query, params in along:
                    other.execute(query, params)
                cur.execute("SELECT * FROM journal WHERE run_id = ANY(%s)", (ids,))
                attempts.execute(
                    "SELECT * FROM attempts WHERE run_id = ANY(%s) AND kind = 'step'"
                    " ORDER BY run_id, position, attempt",
                    (ids,),
                )
                reviews.execute(
                    "SELECT * FROM review_items WHERE run_id = ANY(%s) ORDER BY run_id, created_at",
                    (ids,),
                )
            journal, attempt_rows, review_rows = (
                cur.fetchall(),
                attempts.fetchall(),
                reviews.fetchall(),
            )
        for row in journal:
            histories[row["run_id"]].journal[row["position"]] = rows.journal_from_row(row)
        for row in attempt_rows:
            history = histories[row["run_id"]]
            history.attempts.setdefault(row["position"], []).append(rows.attempt_from_row(row))
        for row in review_rows:
            item = rows.review_from_row(row)
            histories[item.run_id].reviews.setdefault(item.position, []).append(item)
        return histories

    def list_attempts(self, run_id: str) -> list[AttemptRecord]:
        return self._read(
            lambda cur: [
                rows.attempt_from_row(r)
                for r in cur.execute(
                    "SELECT * FROM attempts WHERE run_id = %s"
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
                    "SELECT * FROM journal WHERE run_id = %s ORDER BY position", (run_id,)
                )
            ]
        )

    # -- workers ---------------------------------------------------------------------------
    def register_worker(
        self, worker_id: str, hostname: str, pid: int, queues: Sequence[str], now: datetime
    ) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO workers (worker_id, hostname, pid, queues, started_at,"
                " heartbeat_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (worker_id, hostname, pid, ",".join(queues) or "*", ts(now), ts(now)),
            )

        self._write(txn)

    def worker_stopped(self, worker_id: str, now: datetime) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE workers SET stopped_at = %s WHERE worker_id = %s", (ts(now), worker_id)
            )

        self._write(txn)

    # -- events -----------------------------------------------------------------------------
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
        def txn(cur: Cursor) -> EventRecord:
            # Locking the run orders this against a worker deciding to wait for the event.
            row = cur.execute(_RUN_BY_ID_OR_KEY + " FOR UPDATE", {"ref": run_id_or_key}).fetchone()
            if row is None:
                raise RunNotFoundError(f"no run has id or idempotency key {run_id_or_key!r}")
            run = rows.run_from_row(row)
            if event_key is not None:
                dup = cur.execute(
                    "SELECT * FROM events WHERE run_id = %s AND event_key = %s",
                    (run.run_id, event_key),
                ).fetchone()
                if dup is not None:
                    return rows.event_from_row(dup)
            if run.status.is_terminal:
                raise RunAlreadyFinishedError(
                    f"run {run.run_id} is {run.status}; the event {name!r} was not stored"
                )
            event = one(
                cur.execute(
                    "INSERT INTO events (run_id, name, event_key, payload, sent_at)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING *",
                    (run.run_id, name, event_key, payload, ts(now)),
                )
            )
            if run.status is RunStatus.WAITING and run.waiting_for == name:
                cur.execute(
                    "UPDATE runs SET wake_at = %s, updated_at = %s WHERE run_id = %s",
                    (ts(now), ts(now), run.run_id),
                )
                self._notify_txn(cur, run.queue)
            self._audit_txn(
                cur,
                AuditRecord(
                    actor,
                    "event.received",
                    "run",
                    run.run_id,
                    None,
                    {"event": name, "event_seq": event["event_seq"], "event_key": event_key},
                    correlation_id=run.correlation_id,
                ),
                now,
            )
            return rows.event_from_row(event)

        return self._write(txn)
