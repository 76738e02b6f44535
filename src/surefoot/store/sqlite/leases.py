"""Workers and leases: registration, claims (caps, partitions, takeovers), heartbeats,
release on drain."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from surefoot.domain.records import (
    AttemptRecord,
    AuditRecord,
    Lease,
)
from surefoot.domain.status import (
    RunStatus,
)
from surefoot.store.base import ClaimedRun
from surefoot.store.sqlite import rows
from surefoot.store.sqlite.base import dumps_json, ts
from surefoot.store.sqlite.intake import IntakeMixin

T = TypeVar("T")


def _no_op() -> None:
    return None


def actor_of(worker_id: str) -> str:
    return f"worker:{worker_id}"


class LeasesMixin(IntakeMixin):
    # -- wake-ups ---------------------------------------------------------------------------
    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None]:  # noqa: ARG002
        """SQLite has no notifications across processes: workers poll."""
        return _no_op

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

    # -- claiming ----------------------------------------------------------------------------
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
            now_s = ts(now)
            found = self._candidates_txn(
                cur, now, workflows, queues, limit, dict(caps or {}), global_concurrency or {}
            )
            expires = ts(now + timedelta(seconds=lease_s))
            claimed: list[ClaimedRun] = []
            for row in found:
                before = rows.run_from_row(row)
                taken_over = before.status in (RunStatus.RUNNING, RunStatus.COMPENSATING)
                status = (
                    RunStatus.COMPENSATING
                    if before.status is RunStatus.COMPENSATING
                    else RunStatus.RUNNING
                )
                cur.execute(
                    "UPDATE runs SET status = ?, lease_owner = ?, lease_epoch = lease_epoch + 1,"
                    " lease_expires_at = ?, deliveries = deliveries + 1, wait_reason = NULL,"
                    " wake_at = NULL, waiting_for = NULL, updated_at = ? WHERE run_id = ?",
                    (status.value, worker_id, expires, now_s, before.run_id),
                )
                interrupted = (
                    self._interrupt_open_attempts_txn(
                        cur,
                        before.run_id,
                        now,
                        f"worker {before.lease_owner} stopped before "
                        f"finishing (its lease expired at {ts(before.lease_expires_at)})",
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
                        before.run_id,
                        {"status": before.status.value, "lease_owner": before.lease_owner},
                        {"status": status.value, "lease_owner": worker_id},
                        correlation_id=before.correlation_id,
                    ),
                    now,
                )
                run = rows.run_from_row(
                    cur.execute("SELECT * FROM runs WHERE run_id = ?", (before.run_id,)).fetchone()
                )
                claimed.append(
                    ClaimedRun(
                        run,
                        Lease(run.run_id, worker_id, run.lease_epoch),
                        self._history_txn(cur, run.run_id),
                        interrupted,
                    )
                )
            return claimed

        return self._write(txn)

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
        per-queue limits. Capped queues are queried one by one so a full queue never
        crowds the others out of the batch.
        """
        now_s = ts(now)
        if global_concurrency:
            running = dict(
                cur.execute(
                    "SELECT queue, COUNT(*) FROM runs WHERE status IN ('running', 'compensating')"
                    " AND lease_expires_at > ? GROUP BY queue",
                    (now_s,),
                ).fetchall()
            )
            for name, allowed in global_concurrency.items():
                free = max(0, allowed - int(running.get(name, 0)))
                caps[name] = min(caps.get(name, free), free)
        base = [
            "SELECT * FROM runs WHERE (status = 'pending'",
            " OR (status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= ?)",
            " OR (status IN ('running', 'compensating') AND lease_expires_at <= ?))",
            f" AND workflow IN ({','.join('?' * len(workflows))})",
            " AND queue NOT IN (SELECT queue FROM queues WHERE paused = 1)",
            # One run per partition key at a time, in order: only the oldest unfinished run
            # of a key is claimable.
            " AND (partition_key IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS earlier"
            " WHERE earlier.partition_key = runs.partition_key"
            " AND earlier.status NOT IN ('succeeded', 'failed', 'cancelled')"
            " AND (earlier.created_at < runs.created_at OR (earlier.created_at ="
            " runs.created_at AND earlier.run_id < runs.run_id))))",
        ]
        base_params: list[object] = [now_s, now_s, *workflows]
        order = " ORDER BY priority DESC, created_at LIMIT ?"
        wanted = list(queues) if queues else None
        found: list[sqlite3.Row] = []
        for name, cap in caps.items():
            if (wanted is not None and name not in wanted) or cap <= 0:
                continue
            found += cur.execute(
                "".join([*base, " AND queue = ?", order]),
                [*base_params, name, min(cap, limit)],
            ).fetchall()
        rest = [*base]
        params = [*base_params]
        if wanted is not None:
            rest.append(f" AND queue IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if caps:
            rest.append(f" AND queue NOT IN ({','.join('?' * len(caps))})")
            params.extend(caps)
        found += cur.execute("".join([*rest, order]), [*params, limit]).fetchall()
        found.sort(key=lambda r: (-r["priority"], r["created_at"]))
        return found[:limit]

    def _interrupt_open_attempts_txn(
        self, cur: sqlite3.Cursor, run_id: str, now: datetime, why: str, worker_id: str
    ) -> tuple[AttemptRecord, ...]:
        open_rows = cur.execute(
            "SELECT * FROM attempts WHERE run_id = ? AND outcome = 'running'", (run_id,)
        ).fetchall()
        error = dumps_json({"type": "surefoot.Interrupted", "message": why})
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
