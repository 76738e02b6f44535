"""Claims and leases: which worker holds which run, renewed by heartbeats.

Claiming locks the chosen runs with ``FOR UPDATE SKIP LOCKED``: workers on many
hosts claim at once without waiting for each other and never both get a run.
Every claim bumps ``lease_epoch``; writes for the run are fenced by
(``lease_owner``, ``lease_epoch``) under a row lock, so a worker that lost its
lease can write nothing more. A worker declared dead (its process is provably gone,
see ``surefoot.engine.worker``) has its leases ended at once: the next claim takes
its runs over as after an expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from psycopg.rows import dict_row

from surefoot.domain.records import AttemptRecord, AuditRecord, History, Lease
from surefoot.domain.status import ReviewStatus, RunStatus
from surefoot.store.base import ClaimedRun, actor_of
from surefoot.store.postgres import claims, rows
from surefoot.store.postgres.base import Cursor, Row, dt, dumps_json, iso, one, ts
from surefoot.store.postgres.intake import IntakeMixin, Sent

# When the next run of a set of workflows becomes claimable by time alone (``next_due``).
_NEXT_DUE = (
    "SELECT LEAST("
    "(SELECT MIN(wake_at) FROM runs WHERE status = 'waiting' AND wake_at > %(now)s"
    " AND workflow = ANY(%(workflows)s)),"
    " (SELECT MIN(lease_expires_at) FROM runs WHERE status IN ('running', 'compensating')"
    " AND lease_expires_at > %(now)s AND lease_owner IS DISTINCT FROM %(worker)s"
    " AND workflow = ANY(%(workflows)s))) AS due"
)


def _claim_order(row: Row) -> tuple[int, datetime]:
    return (-int(row["priority"]), row["created_at"])


def _groups(
    cur: Cursor,
    queues: Sequence[str] | None,
    limit: int,
    now: datetime,
    caps: Mapping[str, int],
    global_concurrency: Mapping[str, int],
    params: dict[str, object],
) -> list[claims.Group]:
    """What a claim takes from (see :mod:`surefoot.store.postgres.claims`): a queue with a
    limit (per worker in ``caps``, over all workers in ``global_concurrency``) at most what
    it has left, the other queues the rest; the groups' parameters go into ``params``."""
    wanted = list(queues) if queues else None
    capped = dict(caps)
    limited = sorted(global_concurrency)
    for name in limited:
        # Serialise claims of a globally limited queue so two workers cannot both see the
        # same number running and overshoot the limit.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"surefoot-claim:{name}",))
    if limited:
        running = {
            row["queue"]: row["n"]
            for row in cur.execute(
                "SELECT queue, COUNT(*) AS n FROM runs WHERE queue = ANY(%s)"
                " AND status IN ('running', 'compensating') AND lease_expires_at > %s"
                " GROUP BY queue",
                (limited, ts(now)),
            ).fetchall()
        }
        for name in limited:
            free = max(0, global_concurrency[name] - int(running.get(name, 0)))
            capped[name] = min(capped.get(name, free), free)
    filters = "".join(claims.CLAIM_FILTERS)
    groups: list[claims.Group] = []
    for name, cap in capped.items():
        if (wanted is not None and name not in wanted) or cap <= 0:
            continue
        params[f"queue_{len(groups)}"] = name
        groups.append(
            claims.Group(f"{filters} AND queue = %(queue_{len(groups)})s", min(cap, limit))
        )
    rest = filters
    if wanted is not None:
        rest += " AND queue = ANY(%(queues)s)"
        params["queues"] = wanted
    if capped:
        rest += " AND NOT (queue = ANY(%(capped)s))"
        params["capped"] = list(capped)
    groups.append(claims.Group(rest, limit))
    return groups


def _claim_txn(
    cur: Cursor, groups: Sequence[claims.Group], params: dict[str, object], along: Sequence[Sent]
) -> list[Row]:
    """Run the claim statement for ``groups``, with its settings set and reset around it
    and the statements ``along`` after it (each on its own cursor, for the caller to
    fetch), in one round trip: the runs it leased, in claim order."""
    sql, limits = claims.statement(groups)
    conn = cur.connection
    with conn.cursor(row_factory=dict_row) as claimed:
        with conn.pipeline():
            for name, value in claims.CLAIM_SETTINGS:
                cur.execute(f"SET LOCAL {name} = {value}")
            claimed.execute(sql, {**params, **limits})
            for name, _ in claims.CLAIM_SETTINGS:
                cur.execute(f"RESET {name}")
            for other, query, values in along:
                other.execute(query, values)
        found = claimed.fetchall()
    return sorted(found, key=_claim_order)


class LeaseMixin(IntakeMixin):
    # -- workers whose process is gone --------------------------------------------------------
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
        def txn(cur: Cursor) -> int:
            cur.execute(
                "INSERT INTO workers (worker_id, hostname, pid, queues, started_at,"
                " heartbeat_at, boot_id, pid_namespace, process_started)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
            return _count_live_workers(cur, now - timedelta(seconds=LIVE_WINDOW_S))

        self._live_workers_seen(self._write(txn))

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
                " AND hostname = %s AND boot_id = %s AND pid_namespace = %s"
                " AND process_started IS NOT NULL AND worker_id <> %s",
                (hostname, boot_id, pid_namespace, worker_id),
            ).fetchall()
        )
        gone = [row for row in local if is_gone(row["pid"], row["process_started"])]
        if not gone:
            return {}

        def txn(cur: Cursor) -> dict[str, list[str]]:
            freed: dict[str, list[str]] = {}
            for row in sorted(gone, key=lambda r: str(r["worker_id"])):
                why = (
                    f"the process of worker {row['worker_id']} (pid {row['pid']} on {hostname},"
                    f" started at tick {row['process_started']}) no longer exists"
                )
                stopped = cur.execute(
                    "UPDATE workers SET stopped_at = %s WHERE worker_id = %s"
                    " AND stopped_at IS NULL RETURNING worker_id",
                    (ts(now), row["worker_id"]),
                ).fetchone()
                if stopped is None:
                    continue  # stopped meanwhile, or declared dead by another worker
                self._audit_txn(
                    cur,
                    AuditRecord(
                        actor_of(worker_id),
                        "worker.declared_dead",
                        "worker",
                        row["worker_id"],
                        {"stopped_at": None},
                        {"stopped_at": iso(now)},
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
        self, cur: Cursor, dead_worker_id: str, worker_id: str, why: str, now: datetime
    ) -> list[str]:
        """End now the leases a dead worker held: the next claim takes its runs over."""
        # One statement (one round trip) for all of them, whatever their number.
        held = cur.execute(
            "WITH held AS (SELECT run_id, lease_expires_at FROM runs WHERE lease_owner = %(dead)s"
            " AND status IN ('running', 'compensating') AND lease_expires_at > %(now)s"
            " ORDER BY run_id FOR UPDATE)"
            " UPDATE runs SET lease_expires_at = %(now)s, updated_at = %(now)s FROM held"
            " WHERE runs.run_id = held.run_id RETURNING runs.run_id, runs.queue,"
            " runs.correlation_id, held.lease_expires_at AS expired_at",
            {"dead": dead_worker_id, "now": ts(now)},
        ).fetchall()
        held.sort(key=lambda row: str(row["run_id"]))
        for row in held:
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(worker_id),
                    "run.lease_revoked",
                    "run",
                    row["run_id"],
                    {
                        "lease_owner": dead_worker_id,
                        "lease_expires_at": _iso_or_none(row["expired_at"]),
                    },
                    {"lease_owner": dead_worker_id, "lease_expires_at": iso(now)},
                    reason=why,
                    correlation_id=row["correlation_id"],
                ),
                now,
            )
            self._notify_txn(cur, row["queue"])
        return [row["run_id"] for row in held]

    def next_due(
        self, worker_id: str, *, workflows: Sequence[str], now: datetime
    ) -> datetime | None:
        if not workflows:
            return None
        params = {"now": ts(now), "workflows": list(workflows), "worker": worker_id}
        row = self._read_row(_NEXT_DUE, params)
        return None if row is None else dt(row["due"])

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

        def txn(cur: Cursor) -> list[ClaimedRun]:
            params: dict[str, object] = {
                "now": ts(now),
                "workflows": list(workflows),
                "worker": worker_id,
                "expires": ts(now + timedelta(seconds=lease_s)),
                "limit": limit,
            }
            groups = _groups(cur, queues, limit, now, caps or {}, global_concurrency or {}, params)
            with cur.connection.cursor(row_factory=dict_row) as counted:
                recount = self._recount_along(counted, now, lease_s)
                found = _claim_txn(cur, groups, params, recount)
                if recount:
                    self._live_workers_seen(int(one(counted)["n"]))
            if not found:
                self._changed_nothing_txn(cur)  # rows it locked and left are not changes
                return []
            self._note_xid_txn(cur, found[0]["surefoot_xid"])
            taken_over = _taken_over(found)
            # What only some claims need, in one more round trip: the attempts that the
            # stopped workers of runs taken over left open, and the histories of the runs
            # that have one (which see those attempts ended).
            with_history = [row["run_id"] for row in found if row["has_history"]]
            histories: dict[str, History] = {}
            interrupted: dict[str, tuple[AttemptRecord, ...]] = {}
            if taken_over or with_history:
                with cur.connection.cursor(row_factory=dict_row) as stopped:
                    along: list[Sent] = []
                    if taken_over:
                        along.append((stopped, _INTERRUPT, _interrupt_params(taken_over, now)))
                    histories = self._histories_txn(cur, with_history, along=along)
                    if taken_over:
                        interrupted = _interrupted_from(stopped.fetchall())
            claimed: list[ClaimedRun] = []
            for row in found:
                run = rows.run_from_row(row)
                self._audit_interrupted_txn(
                    cur,
                    interrupted.get(run.run_id, ()),
                    taken_over.get(run.run_id, ""),
                    run.correlation_id,
                    now,
                    worker_id,
                )
                self._audit_txn(
                    cur,
                    AuditRecord(
                        actor_of(worker_id),
                        "run.taken_over" if run.run_id in taken_over else "run.claimed",
                        "run",
                        run.run_id,
                        {"status": row["before_status"], "lease_owner": row["before_owner"]},
                        {"status": run.status.value, "lease_owner": worker_id},
                        correlation_id=run.correlation_id,
                    ),
                    now,
                )
                history = histories.get(run.run_id) or History()
                self._known_run(
                    run.run_id,
                    run.correlation_id,
                    run.status.value,
                    open_reviews=any(
                        item.status is ReviewStatus.OPEN
                        for items in history.reviews.values()
                        for item in items
                    ),
                )
                claimed.append(
                    ClaimedRun(
                        run,
                        Lease(run.run_id, worker_id, run.lease_epoch),
                        history,
                        interrupted.get(run.run_id, ()),
                        run.run_id in taken_over,
                    )
                )
            return claimed

        # Skips locked runs rather than waiting for them: a claim may share the server.
        return self._write(txn, concurrent=True)

    def _interrupt_open_attempts_txn(
        self, cur: Cursor, run_id: str, now: datetime, why: str, worker_id: str
    ) -> tuple[AttemptRecord, ...]:
        interrupted = self._interrupt_attempts_of_txn(cur, {run_id: why}, now).get(run_id, ())
        if interrupted:
            correlation = one(
                cur.execute("SELECT correlation_id FROM runs WHERE run_id = %s", (run_id,))
            )["correlation_id"]
            self._audit_interrupted_txn(cur, interrupted, why, correlation, now, worker_id)
        return interrupted

    @staticmethod
    def _interrupt_attempts_of_txn(
        cur: Cursor, whys: Mapping[str, str], now: datetime
    ) -> dict[str, tuple[AttemptRecord, ...]]:
        """Mark the attempts still ``running`` of these runs ``interrupted``, each run's
        with its reason, in one statement; returns them by run, in attempt order."""
        if not whys:
            return {}
        return _interrupted_from(cur.execute(_INTERRUPT, _interrupt_params(whys, now)).fetchall())

    def _audit_interrupted_txn(
        self,
        cur: Cursor,
        interrupted: Sequence[AttemptRecord],
        why: str,
        correlation_id: str | None,
        now: datetime,
        worker_id: str,
    ) -> None:
        for attempt in interrupted:
            self._audit_txn(
                cur,
                AuditRecord(
                    actor_of(worker_id),
                    "attempt.interrupted",
                    "attempt",
                    f"{attempt.run_id}/{attempt.position}/{attempt.attempt}",
                    {"outcome": "running"},
                    {"outcome": "interrupted"},
                    reason=why,
                    correlation_id=correlation_id,
                ),
                now,
            )

    def _recount_along(self, cursor: Cursor, now: datetime, lease_s: float) -> list[Sent]:
        """The count of live workers for ``cursor``, to send with a claim's leases if it is
        due: a worker busy claiming notices others start (or stop), in passing."""
        if not self._live_workers_due():
            return []
        return [(cursor, _LIVE_WORKERS, (ts(now - timedelta(seconds=lease_s)),))]

    def heartbeat(
        self, worker_id: str, leases: Sequence[Lease], lease_s: float, now: datetime
    ) -> tuple[set[str], set[str]]:
        ordered = sorted(leases, key=lambda lease: lease.run_id)  # one lock order for all

        def txn(cur: Cursor) -> tuple[set[str], set[str], int]:
            cur.execute(
                "UPDATE workers SET heartbeat_at = %s WHERE worker_id = %s", (ts(now), worker_id)
            )
            live = _count_live_workers(cur, now - timedelta(seconds=lease_s))
            expires = ts(now + timedelta(seconds=lease_s))
            lost: set[str] = set()
            for lease in ordered:
                cur.execute(
                    "UPDATE runs SET lease_expires_at = %s WHERE run_id = %s AND "
                    "lease_owner = %s AND lease_epoch = %s",
                    (expires, lease.run_id, lease.worker_id, lease.epoch),
                )
                if cur.rowcount == 0:
                    lost.add(lease.run_id)
            held = [lease.run_id for lease in ordered if lease.run_id not in lost]
            cancels: set[str] = set()
            if held:
                cancels = {
                    r["run_id"]
                    for r in cur.execute(
                        "SELECT run_id FROM runs WHERE cancel_requested AND run_id = ANY(%s)",
                        (held,),
                    )
                }
            return lost, cancels, live

        lost, cancels, live = self._write(txn)
        self._live_workers_seen(live)
        return lost, cancels

    def release(self, lease: Lease, now: datetime, *, interrupt_open_attempts: bool) -> None:
        def txn(cur: Cursor) -> None:
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
                "UPDATE runs SET status = %s, lease_owner = NULL, lease_expires_at = %s,"
                " updated_at = %s WHERE run_id = %s",
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
            self._notify_txn(cur, row["queue"])

        self._write(txn)


# A worker whose heartbeat is older than this when another registers is not counted as
# live by it (the default lease; heartbeats count with their own lease).
LIVE_WINDOW_S = 30.0


# Worker processes not stopped whose heartbeat is later than the parameter.
_LIVE_WORKERS = "SELECT COUNT(*) AS n FROM workers WHERE stopped_at IS NULL AND heartbeat_at > %s"


def _count_live_workers(cur: Cursor, since: datetime) -> int:
    return int(one(cur.execute(_LIVE_WORKERS, (ts(since),)))["n"])


def _taken_over(found: Sequence[Row]) -> dict[str, str]:
    """Why each claimed run that was still leased (its worker stopped) is taken over."""
    return {
        row["run_id"]: (
            f"worker {row['before_owner']} stopped before finishing (its lease "
            f"expired at {_iso_or_none(row['before_expires'])})"
        )
        for row in found
        if row["before_status"] in (RunStatus.RUNNING.value, RunStatus.COMPENSATING.value)
    }


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


_INTERRUPT = (
    "UPDATE attempts AS a SET outcome = 'interrupted', error = w.error,"
    " finished_at = %s FROM unnest(%s::text[], %s::text[]) AS w (run_id, error)"
    " WHERE a.run_id = w.run_id AND a.outcome = 'running' RETURNING a.*"
)


def _interrupt_params(whys: Mapping[str, str], now: datetime) -> tuple[object, ...]:
    """``_INTERRUPT``'s parameters: each run's attempts get its own reason."""
    ids = list(whys)
    errors = [dumps_json({"type": "surefoot.Interrupted", "message": whys[i]}) for i in ids]
    return (ts(now), ids, errors)


def _interrupted_from(returned: Sequence[Row]) -> dict[str, tuple[AttemptRecord, ...]]:
    """What ``_INTERRUPT`` returned, by run, in attempt order."""
    found: dict[str, list[AttemptRecord]] = {}
    for row in returned:
        found.setdefault(row["run_id"], []).append(rows.attempt_from_row(row))
    return {
        run_id: tuple(sorted(records, key=lambda r: (r.position, r.kind.value, r.attempt)))
        for run_id, records in found.items()
    }
