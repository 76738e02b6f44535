"""Read-only statistics for metrics, alert rules and readiness; alert events (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from surefoot.domain.stats import (
    AlertEvent,
    AlertState,
    AttemptCounts,
    AuditBacklog,
    DeadLetterStats,
    QueueStats,
    ReviewStats,
    WorkerBeat,
    alert_audit_record,
)
from surefoot.store.postgres.base import Cursor, PostgresBase, Row, dt, dt_required, one, ts


class StatsMixin(PostgresBase):
    def queue_stats(self) -> list[QueueStats]:
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT queue, COUNT(*) AS depth, MIN(created_at) AS oldest FROM runs"
                " WHERE status = 'pending' GROUP BY queue ORDER BY queue"
            ).fetchall()
        )
        return [QueueStats(r["queue"], r["depth"], dt(r["oldest"])) for r in rows]

    def dead_letter_stats(self) -> list[DeadLetterStats]:
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT workflow, failure_class, COUNT(*) AS n FROM dead_letters"
                " WHERE status = 'open' GROUP BY workflow, failure_class"
                " ORDER BY workflow, failure_class"
            ).fetchall()
        )
        return [DeadLetterStats(r["workflow"], r["failure_class"], r["n"]) for r in rows]

    def count_dead_letters_since(self, since: datetime) -> int:
        row = self._read(
            lambda cur: one(
                cur.execute(
                    "SELECT COUNT(*) AS n FROM dead_letters WHERE dead_lettered_at >= %s",
                    (ts(since),),
                )
            )
        )
        return int(row["n"])

    def review_stats(self, now: datetime) -> list[ReviewStats]:
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT kind, COUNT(*) AS n, MIN(created_at) AS oldest,"
                " COUNT(*) FILTER (WHERE due_at IS NOT NULL AND due_at < %s) AS overdue"
                " FROM review_items WHERE status = 'open' GROUP BY kind ORDER BY kind",
                (ts(now),),
            ).fetchall()
        )
        return [ReviewStats(r["kind"], r["n"], dt(r["oldest"]), int(r["overdue"])) for r in rows]

    def worker_beats(self) -> list[WorkerBeat]:
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT worker_id, hostname, heartbeat_at, stopped_at FROM workers"
                " ORDER BY heartbeat_at DESC"
            ).fetchall()
        )
        return [
            WorkerBeat(
                r["worker_id"], r["hostname"], dt_required(r["heartbeat_at"]), dt(r["stopped_at"])
            )
            for r in rows
        ]

    def audit_backlog(self) -> AuditBacklog:
        # Not swept first (unlike a read of the log): this tells whether sweeps keep up.
        # The oldest entry is looked for among the oldest transaction's entries only
        # (found by the primary key); the count reads a table that is near empty unless
        # sweeps have stopped.
        row = self._read(
            lambda cur: one(
                cur.execute(
                    "SELECT (SELECT COUNT(*) FROM audit_pending) AS n,"
                    " (SELECT entries FROM audit_pending ORDER BY id LIMIT 1) AS first"
                )
            )
        )
        stored = [datetime.fromisoformat(entry[0]).astimezone(UTC) for entry in row["first"] or ()]
        return AuditBacklog(int(row["n"]), min(stored, default=None))

    def attempt_counts(self, since: datetime) -> list[AttemptCounts]:
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT r.workflow AS workflow, COALESCE(a.failure_class, '') AS fc,"
                " COUNT(*) AS n FROM attempts a JOIN runs r ON r.run_id = a.run_id"
                " WHERE a.kind = 'step' AND a.finished_at >= %s"
                " GROUP BY r.workflow, fc ORDER BY r.workflow, fc",
                (ts(since),),
            ).fetchall()
        )
        return [AttemptCounts(r["workflow"], r["fc"], r["n"]) for r in rows]

    # -- alert events ------------------------------------------------------------------------
    def record_alert_event(self, event: AlertEvent) -> bool:
        """Append the event unless the rule is already in that state (another evaluator got
        there first); audited in the same transaction. True when recorded."""

        def txn(cur: Cursor) -> bool:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext('surefoot.alert:' || %s))", (event.rule,)
            )
            last = cur.execute(
                "SELECT state FROM alert_events WHERE rule = %s ORDER BY event_seq DESC LIMIT 1",
                (event.rule,),
            ).fetchone()
            current = AlertState(last["state"]) if last else AlertState.RESOLVED
            if current is event.state:
                return False
            cur.execute(
                "INSERT INTO alert_events (rule, state, severity, value, threshold, summary, at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    event.rule,
                    event.state.value,
                    event.severity,
                    event.value,
                    event.threshold,
                    event.summary,
                    ts(event.at),
                ),
            )
            self._audit_txn(cur, alert_audit_record(event, current), event.at)
            return True

        return self._write(txn)

    def alert_events(self, *, rule: str | None = None, limit: int = 50) -> list[AlertEvent]:
        """Newest first."""
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT * FROM alert_events WHERE (%s::text IS NULL OR rule = %s)"
                " ORDER BY event_seq DESC LIMIT %s",
                (rule, rule, limit),
            ).fetchall()
        )
        return [_event_from_row(r) for r in rows]

    def alert_states(self) -> list[AlertEvent]:
        """The newest event of every rule that has one."""
        rows = self._read(
            lambda cur: cur.execute(
                "SELECT DISTINCT ON (rule) * FROM alert_events ORDER BY rule, event_seq DESC"
            ).fetchall()
        )
        return [_event_from_row(r) for r in rows]


def _event_from_row(row: Row) -> AlertEvent:
    return AlertEvent(
        rule=row["rule"],
        state=AlertState(row["state"]),
        severity=row["severity"],
        summary=row["summary"],
        at=dt_required(row["at"]),
        value=row["value"],
        threshold=row["threshold"],
        event_seq=row["event_seq"],
    )
