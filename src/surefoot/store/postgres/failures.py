"""Failure handling: compensation of committed steps, and circuit breakers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from surefoot.domain.breaker import Breaker
from surefoot.domain.queues import RateLimit, take_token
from surefoot.domain.records import AttemptResult, AuditRecord, Lease
from surefoot.domain.status import AttemptKind, AttemptOutcome
from surefoot.store.base import actor_of
from surefoot.store.postgres import rows
from surefoot.store.postgres.base import Cursor, one, ts
from surefoot.store.postgres.execution import ExecutionMixin

T = TypeVar("T")

# Breaker changes are read-modify-write of a row that may not exist yet, so they take a
# transaction-scoped advisory lock on the key (two-key form: this namespace, hash of key).
_BREAKER_LOCK_SPACE = 0x5F5E_B4EA


class FailureMixin(ExecutionMixin):
    # -- compensation ---------------------------------------------------------------------------
    def start_compensating(
        self, lease: Lease, reason: str, error: str | None, now: datetime
    ) -> None:
        def txn(cur: Cursor) -> None:
            row = self._fence_txn(cur, lease)
            if row["status"] == "compensating":
                return
            cur.execute(
                "UPDATE runs SET status = 'compensating', error = %s, updated_at = %s"
                " WHERE run_id = %s",
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
        self._gave_status(lease.run_id, "compensating")

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
        def txn(cur: Cursor) -> None:
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
                " committed_at) VALUES (%s, %s, %s, 'committed', %s, %s)",
                (lease.run_id, position, step, output, ts(now)),
            )

        self._write(txn)

    def compensated_positions(self, run_id: str) -> set[int]:
        return self._read(
            lambda cur: {
                int(r["position"])
                for r in cur.execute(
                    "SELECT position FROM compensations WHERE run_id = %s", (run_id,)
                )
            }
        )

    # -- breakers ---------------------------------------------------------------------------------
    def update_breaker(
        self, key: str, change: Callable[[Breaker], tuple[Breaker, T]], now: datetime
    ) -> T:
        def txn(cur: Cursor) -> T:
            cur.execute(
                "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))",
                (_BREAKER_LOCK_SPACE, key),
            )
            row = cur.execute("SELECT * FROM breakers WHERE breaker_key = %s", (key,)).fetchone()
            current = rows.breaker_from_row(row) if row else Breaker(key)
            updated, result = change(current)
            if updated != current:
                cur.execute(
                    "INSERT INTO breakers (breaker_key, state, consecutive_failures, opened_at,"
                    " probe_owner, updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
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

        def txn(cur: Cursor) -> float:
            cur.execute(
                "INSERT INTO rate_limits (limit_key, tokens, updated_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (limit_key) DO NOTHING",
                (limit.key, float(limit.burst), ts(now)),
            )
            row = one(
                cur.execute(
                    "SELECT tokens, updated_at FROM rate_limits WHERE limit_key = %s FOR UPDATE",
                    (limit.key,),
                )
            )
            elapsed = (now - row["updated_at"]).total_seconds()
            level, wait = take_token(limit, float(row["tokens"]), elapsed)
            cur.execute(
                "UPDATE rate_limits SET tokens = %s, updated_at = %s WHERE limit_key = %s",
                (level, ts(max(now, row["updated_at"])), limit.key),
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
