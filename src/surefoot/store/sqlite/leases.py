"""Workers and leases: registration, claims (caps, partitions, takeovers), heartbeats,
release on drain, and the leases of workers declared dead (their process is provably gone,
see ``surefoot.engine.worker``) ended at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from surefoot.domain.records import (
    AttemptRecord,
    AuditRecord,
    History,
    Lease,
    RunRecord,
)
from surefoot.domain.status import (
    RunStatus,
)
from surefoot.store.base import ClaimedRun, actor_of
from surefoot.store.sqlite import rows
from surefoot.store.sqlite.intake import IntakeMixin
from surefoot.store.sqlite.values import dt, dumps_json, ts

T = TypeVar("T")


# Whether a run has rows a history is made of (an index probe per table): a claim reads
# the histories of the runs that have one only, so a new run's claim reads none.
HAS_HISTORY = (
    "("
    + " OR ".join(
        f"EXISTS (SELECT 1 FROM {table} AS h WHERE h.run_id = runs.run_id)"
        for table in ("journal", "attempts", "review_items")
    )
    + ")"
)
# Lease the claimed runs (``marks``: one placeholder per run); a compensating run goes on
# compensating, any other runs. Each comes back with whether it has a history.
_LEASE = (
    "UPDATE runs SET status = CASE WHEN status = 'compensating'"
    " THEN 'compensating' ELSE 'running' END, lease_owner = ?,"
    " lease_epoch = lease_epoch + 1, lease_expires_at = ?,"
    " deliveries = deliveries + 1, wait_reason = NULL, wake_at = NULL,"
    " waiting_for = NULL, updated_at = ? WHERE run_id IN ({marks})"
    " RETURNING *, " + HAS_HISTORY + " AS has_history"
)


def _claim_order(row: sqlite3.Row) -> tuple[int, str]:
    return -row["priority"], row["created_at"]


# The runs claimable by time alone, each kind read through the index that holds only its
# runs in time order (schema 8), named so that no plan reads every run executing now or,
# with no statistics to go by (the store never gathers any), every run of a workflow.
WAKING = "runs INDEXED BY runs_waking WHERE status = 'waiting'"
LEASED = "runs INDEXED BY runs_leased WHERE status IN ('running', 'compensating')"

# The queues holding claimable runs of each kind, in one statement: those with pending runs
# by a loose index scan of ``runs_claimable`` (one index lookup per queue, instead of
# reading every pending run), those with runs due to wake and those with expired leases.
CLAIMABLE_QUEUES = (
    "WITH RECURSIVE pending (queue) AS ("
    " SELECT (SELECT MIN(queue) FROM runs WHERE status = 'pending')"
    " UNION ALL SELECT (SELECT MIN(queue) FROM runs WHERE status = 'pending'"
    " AND queue > pending.queue) FROM pending WHERE pending.queue IS NOT NULL)"
    " SELECT 'pending', queue FROM pending WHERE queue IS NOT NULL"
    f" UNION ALL SELECT DISTINCT 'waking', queue FROM {WAKING}"
    " AND wake_at IS NOT NULL AND wake_at <= ?"
    f" UNION ALL SELECT DISTINCT 'expired', queue FROM {LEASED} AND lease_expires_at <= ?"
)

# When the next run of a set of workflows becomes claimable by time alone (``next_due``):
# the workflows' marks follow each part's own parameters.
NEXT_DUE = (
    "SELECT MIN(due) FROM ("
    f"SELECT MIN(wake_at) AS due FROM {WAKING} AND wake_at > ? AND workflow IN ({{marks}})"
    f" UNION ALL SELECT MIN(lease_expires_at) FROM {LEASED} AND lease_expires_at > ?"
    " AND lease_owner IS NOT ? AND workflow IN ({marks}))"
)

# What makes a run claimable, by kind: the runs it is read from, and the condition.
CLAIM_KINDS = (
    ("pending", "runs WHERE status = 'pending'"),
    ("waking", f"{WAKING} AND wake_at IS NOT NULL AND wake_at <= ?"),
    ("expired", f"{LEASED} AND lease_expires_at <= ?"),
)


def _claimable_queues_txn(cur: sqlite3.Cursor, now_s: str | None) -> dict[str, set[str]]:
    """The queues holding runs claimable now, by kind: pending, waking, expired."""
    found: dict[str, set[str]] = {"pending": set(), "waking": set(), "expired": set()}
    for kind, queue in cur.execute(CLAIMABLE_QUEUES, (now_s, now_s)):
        found[kind].add(queue)
    return found


class LeasesMixin(IntakeMixin):
    # -- wake-ups ---------------------------------------------------------------------------
    def subscribe(
        self, wake: Callable[[], None], *, waiting: Callable[[], bool] | None = None
    ) -> Callable[[], None]:
        """SQLite has no notifications across processes: ``wake`` is called when the
        store's writing connection sees that another process committed (see ``watch``),
        which it looks for most closely while a subscriber is ``waiting``."""
        return self._watcher.subscribe(wake, waiting)

    def subscribe_changes(
        self, wake: Callable[[], None], *, waiting: Callable[[], bool] | None = None
    ) -> Callable[[], None] | None:
        """The same wake-ups: the watcher sees every commit of another process."""
        return self._watcher.subscribe(wake, waiting)

    # -- workers ---------------------------------------------------------------------------
    def register_worker(
        self, worker_id: str, hostname: str, pid: int, queues: Sequence[str], now: datetime
    ) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "INSERT INTO workers (worker_id, hostname, pid, queues, started_at,"
                " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                (worker_id, hostname, pid, ",".join(queues) or "*", ts(now), ts(now)),
            )

        self._write(txn)

    def worker_stopped(self, worker_id: str, now: datetime) -> None:
        self._write(
            lambda cur: cur.execute(
                "UPDATE workers SET stopped_at = ? WHERE worker_id = ?", (ts(now), worker_id)
            )
        )

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
        def txn(cur: sqlite3.Cursor) -> None:
            cur.execute(
                "INSERT INTO workers (worker_id, hostname, pid, queues, started_at,"
                " heartbeat_at, boot_id, pid_namespace, process_started)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    worker_id,
                    hostname,
                    pid,
                    ",".join(queues) or "*",
                    ts(now),
                    ts(now),
                    boot_id,
                    pid_namespace,
                    process_started,
                ),
            )

        self._write(txn)

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
        # Read first: the check runs often and almost always finds every worker alive,
        # which then costs no write transaction.
        local = self._read(
            lambda cur: cur.execute(
                "SELECT worker_id, pid, process_started FROM workers WHERE stopped_at IS NULL"
                " AND hostname = ? AND boot_id = ? AND pid_namespace = ?"
                " AND process_started IS NOT NULL AND worker_id != ?",
                (hostname, boot_id, pid_namespace, worker_id),
            ).fetchall()
        )
        gone = [row for row in local if is_gone(row["pid"], row["process_started"])]
        if not gone:
            return {}

        def txn(cur: sqlite3.Cursor) -> dict[str, list[str]]:
            freed: dict[str, list[str]] = {}
            for row in gone:
                why = (
                    f"the process of worker {row['worker_id']} (pid {row['pid']} on {hostname},"
                    f" started at tick {row['process_started']}) no longer exists"
                )
                cur.execute(
                    "UPDATE workers SET stopped_at = ? WHERE worker_id = ? AND stopped_at IS NULL",
                    (ts(now), row["worker_id"]),
                )
                if cur.rowcount == 0:
                    continue  # stopped meanwhile, or declared dead by another worker
                self._audit_txn(
                    cur,
                    AuditRecord(
                        actor_of(worker_id),
                        "worker.declared_dead",
                        "worker",
                        row["worker_id"],
                        {"stopped_at": None},
                        {"stopped_at": ts(now)},
                        reason=why,
                    ),
                    now,
                )
                freed[row["worker_id"]] = self._revoke_leases_txn(
                    cur, row["worker_id"], worker_id, why, now
                )
            return freed

        return self._write(txn)

    def _revoke_leases_txn(
        self, cur: sqlite3.Cursor, dead_worker_id: str, worker_id: str, why: str, now: datetime
    ) -> list[str]:
        """End now the leases a dead worker held: the next claim takes its runs over."""
        held = cur.execute(
            "SELECT run_id, lease_expires_at, correlation_id FROM runs WHERE lease_owner = ?"
            " AND status IN ('running', 'compensating') AND lease_expires_at > ?",
            (dead_worker_id, ts(now)),
        ).fetchall()
        for row in held:
            cur.execute(
                "UPDATE runs SET lease_expires_at = ?, updated_at = ? WHERE run_id = ?",
                (ts(now), ts(now), row["run_id"]),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(worker_id),
                    "run.lease_revoked",
                    "run",
                    row["run_id"],
                    {"lease_owner": dead_worker_id, "lease_expires_at": row["lease_expires_at"]},
                    {"lease_owner": dead_worker_id, "lease_expires_at": ts(now)},
                    reason=why,
                    correlation_id=row["correlation_id"],
                ),
                now,
            )
        return [row["run_id"] for row in held]

    # -- claiming ----------------------------------------------------------------------------
    def next_due(
        self, worker_id: str, *, workflows: Sequence[str], now: datetime
    ) -> datetime | None:
        if not workflows:
            return None
        marks = ",".join("?" * len(workflows))
        row = self._read(
            lambda cur: cur.execute(
                NEXT_DUE.format(marks=marks),
                (ts(now), *workflows, ts(now), worker_id, *workflows),
            ).fetchone()
        )
        return dt(row[0])

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
        if limit <= 0 or not workflows:
            return []

        def txn(cur: sqlite3.Cursor) -> list[ClaimedRun]:
            found = self._candidates_txn(
                cur, now, workflows, queues, limit, dict(caps or {}), global_concurrency or {}
            )
            if not found:
                return []
            # A few statements for the whole claim, however many runs it takes: the leases
            # in one UPDATE, which tells which runs have a history, and their histories in
            # three reads (none when every run is new). What a run was before its claim
            # is read from its candidate row as stored (timestamps are stored as ``ts``
            # writes them), not made into a record only to be read back.
            ids = [before["run_id"] for before in found]
            returned = cur.execute(
                _LEASE.format(marks=",".join("?" * len(ids))),
                (worker_id, ts(now + timedelta(seconds=lease_s)), ts(now), *ids),
            ).fetchall()
            leased = {row["run_id"]: rows.run_from_row(row) for row in returned}
            with_history = {row["run_id"]: bool(row["has_history"]) for row in returned}
            taken: list[tuple[RunRecord, bool, tuple[AttemptRecord, ...]]] = []
            for before in found:
                run = leased[before["run_id"]]
                status, owner = before["status"], before["lease_owner"]
                taken_over = status in (RunStatus.RUNNING.value, RunStatus.COMPENSATING.value)
                interrupted = (
                    self._interrupt_open_attempts_txn(
                        cur,
                        run.run_id,
                        now,
                        f"worker {owner} stopped before "
                        f"finishing (its lease expired at {before['lease_expires_at']})",
                        worker_id,
                    )
                    if taken_over
                    else ()
                )
                self._audit_txn(
                    cur,
                    AuditRecord(
                        actor_of(worker_id),
                        "run.taken_over" if taken_over else "run.claimed",
                        "run",
                        run.run_id,
                        {"status": status, "lease_owner": owner},
                        {"status": run.status.value, "lease_owner": worker_id},
                        correlation_id=run.correlation_id,
                    ),
                    now,
                )
                taken.append((run, taken_over, interrupted))
            # After the interruptions, which they see; a run with no history has none to read.
            have = [run_id for run_id in ids if with_history[run_id]]
            histories = self._histories_txn(cur, have) if have else {}
            return [
                ClaimedRun(
                    run,
                    Lease(run.run_id, worker_id, run.lease_epoch),
                    histories.get(run.run_id, History()),
                    interrupted,
                    taken_over,
                )
                for run, taken_over, interrupted in taken
            ]

        # A claim acknowledges nothing outside the store: it need not wait for the disk.
        # Only a crash of the machine can undo it, and that ends this worker too; every
        # write that could act on it (a step's start before its effect, a run's end) is
        # flushed, and flushes the claim with it (see ``group_commit``).
        return self._write(txn, flush=False)

    @staticmethod
    def _candidates_txn(
        cur: sqlite3.Cursor,
        now: datetime,
        workflows: Sequence[str],
        queues: Sequence[str] | None,
        limit: int,
        caps: dict[str, int],
        global_concurrency: Mapping[str, int],
    ) -> list[sqlite3.Row]:
        """Claimable runs, best first, honouring per-queue caps.

        A queue with a global concurrency limit is capped by the runs of it executing now
        (under this write lock the count is exact); ``caps`` are the claiming worker's own
        per-queue limits. Queues are queried one by one, so a full queue never crowds the
        others out of the batch.
        """
        now_s = ts(now)
        if global_concurrency:
            running = dict(
                cur.execute(
                    f"SELECT queue, COUNT(*) FROM {LEASED} AND lease_expires_at > ? GROUP BY queue",
                    (now_s,),
                ).fetchall()
            )
            for name, allowed in global_concurrency.items():
                free = max(0, allowed - int(running.get(name, 0)))
                caps[name] = min(caps.get(name, free), free)
        # Each kind of claimable run is looked up by an index of its own, one queue at a
        # time: a run of the top ``limit`` overall is among the top ``limit`` of its queue
        # and kind, so merging those and keeping the best ``limit`` gives what one query
        # over all runs would, without reading (and sorting) every pending run each claim.
        filters = "".join(
            [
                f" AND workflow IN ({','.join('?' * len(workflows))})",
                " AND queue NOT IN (SELECT queue FROM queues WHERE paused = 1)",
                # One run per partition key at a time, in order: only the oldest unfinished
                # run of a key is claimable.
                " AND (partition_key IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS earlier"
                " WHERE earlier.partition_key = runs.partition_key"
                " AND earlier.status NOT IN ('succeeded', 'failed', 'cancelled')"
                " AND (earlier.created_at < runs.created_at OR (earlier.created_at ="
                " runs.created_at AND earlier.run_id < runs.run_id))))",
                " ORDER BY priority DESC, created_at LIMIT ?",
            ]
        )
        claimable = _claimable_queues_txn(cur, now_s)
        wanted = set(queues) if queues else None
        by_queue: dict[str, list[sqlite3.Row]] = {}
        for kind, source in CLAIM_KINDS:
            params = [] if kind == "pending" else [now_s]
            for name in sorted(claimable[kind]):
                cap = caps.get(name, limit)
                if (wanted is not None and name not in wanted) or cap <= 0:
                    continue
                by_queue.setdefault(name, []).extend(
                    cur.execute(
                        f"SELECT * FROM {source} AND queue = ?{filters}",
                        [*params, name, *workflows, min(cap, limit)],
                    ).fetchall()
                )
        found: list[sqlite3.Row] = []
        for name, candidates in by_queue.items():
            candidates.sort(key=_claim_order)
            found += candidates[: min(caps.get(name, limit), limit)]
        found.sort(key=_claim_order)
        return found[:limit]

    def _interrupt_open_attempts_txn(
        self, cur: sqlite3.Cursor, run_id: str, now: datetime, why: str, worker_id: str
    ) -> tuple[AttemptRecord, ...]:
        open_rows = cur.execute(
            "SELECT * FROM attempts WHERE run_id = ? AND outcome = 'running'", (run_id,)
        ).fetchall()
        error = dumps_json({"type": "surefoot.Interrupted", "message": why})
        correlation = (
            cur.execute("SELECT correlation_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if open_rows
            else None
        )
        for row in open_rows:
            cur.execute(
                "UPDATE attempts SET outcome = 'interrupted', error = ?, finished_at = ?"
                " WHERE run_id = ? AND position = ? AND kind = ? AND attempt = ?",
                (error, ts(now), run_id, row["position"], row["kind"], row["attempt"]),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(worker_id),
                    "attempt.interrupted",
                    "attempt",
                    f"{run_id}/{row['position']}/{row['attempt']}",
                    {"outcome": "running"},
                    {"outcome": "interrupted"},
                    reason=why,
                    correlation_id=correlation["correlation_id"] if correlation else None,
                ),
                now,
            )
        return tuple(
            rows.attempt_from_row(r)
            for r in cur.execute(
                "SELECT * FROM attempts WHERE run_id = ? AND outcome = 'interrupted'"
                " AND finished_at = ?",
                (run_id, ts(now)),
            )
        )

    def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_s: float, now: datetime
    ) -> tuple[set[str], set[str]]:
        def txn(cur: sqlite3.Cursor) -> tuple[set[str], set[str]]:
            cur.execute(
                "UPDATE workers SET heartbeat_at = ? WHERE worker_id = ?", (ts(now), worker_id)
            )
            expires = ts(now + timedelta(seconds=lease_s))
            lost: set[str] = set()
            for lease in leases:
                cur.execute(
                    "UPDATE runs SET lease_expires_at = ? WHERE run_id = ? AND "
                    "lease_owner = ? AND lease_epoch = ?",
                    (expires, lease.run_id, lease.worker_id, lease.epoch),
                )
                if cur.rowcount == 0:
                    lost.add(lease.run_id)
            held = [lease.run_id for lease in leases if lease.run_id not in lost]
            cancels: set[str] = set()
            if held:
                cancels = {
                    r[0]
                    for r in cur.execute(
                        f"SELECT run_id FROM runs WHERE cancel_requested = 1 AND run_id IN "
                        f"({','.join('?' * len(held))})",
                        held,
                    )
                }
            return lost, cancels

        return self._write(txn)

    def release(self, lease: Lease, now: datetime, *, interrupt_open_attempts: bool) -> None:
        def txn(cur: sqlite3.Cursor) -> None:
            row = self._fence_txn(cur, lease)
            if interrupt_open_attempts:
                self._interrupt_open_attempts_txn(
                    cur,
                    lease.run_id,
                    now,
                    "the worker shut down during the attempt",
                    lease.worker_id,
                )
            status = "compensating" if row["status"] == "compensating" else "pending"
            cur.execute(
                "UPDATE runs SET status = ?, lease_owner = NULL, lease_expires_at = ?,"
                " updated_at = ? WHERE run_id = ?",
                (status, ts(now), ts(now), lease.run_id),
            )
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(lease.worker_id),
                    "run.released",
                    "run",
                    lease.run_id,
                    {"status": row["status"]},
                    {"status": status},
                    reason="worker draining",
                    correlation_id=row["correlation_id"],
                ),
                now,
            )

        self._write(txn)
