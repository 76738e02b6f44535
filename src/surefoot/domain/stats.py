"""What the store reports for metrics, alert rules and readiness: small read-only records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from surefoot.domain.records import AuditRecord


@dataclass(frozen=True)
class AuditBacklog:
    """Audit entries committed with their change but not yet linked into the hash chain:
    the transactions that stored them, and the time of the oldest such entry."""

    transactions: int
    oldest_at: datetime | None

    def waited_s(self, now: datetime) -> float:
        """How long the oldest entry has waited at ``now`` (0 when none; never below 0,
        since a writer's clock may run ahead)."""
        if self.oldest_at is None:
            return 0.0
        return max((now - self.oldest_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class QueueStats:
    """Runs ready to be claimed in one queue (status ``pending``) and the oldest's creation."""

    queue: str
    depth: int
    oldest_created_at: datetime | None


@dataclass(frozen=True)
class DeadLetterStats:
    """Open dead letters of one workflow and failure class."""

    workflow: str
    failure_class: str
    open: int


@dataclass(frozen=True)
class ReviewStats:
    """Open review items of one kind: how many, the oldest, and how many are past due."""

    kind: str
    open: int
    oldest_created_at: datetime | None
    overdue: int


@dataclass(frozen=True)
class WorkerBeat:
    worker_id: str
    hostname: str
    heartbeat_at: datetime
    stopped_at: datetime | None


@dataclass(frozen=True)
class AttemptCounts:
    """Step attempts of one workflow that finished in a window, by failure class
    (``failure_class`` is empty for attempts that finished without a failure)."""

    workflow: str
    failure_class: str
    attempts: int


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertEvent:
    """One firing or resolution of an alert rule, as stored."""

    rule: str
    state: AlertState
    severity: str
    summary: str
    at: datetime
    value: float | None = None
    threshold: float | None = None
    event_seq: int = 0


def alert_audit_record(event: AlertEvent, before: AlertState) -> AuditRecord:
    """The audit entry both stores append with an alert event."""
    return AuditRecord(
        "system",
        f"alert.{event.state.value}",
        "alert",
        event.rule,
        {"state": before.value},
        {"state": event.state.value, "value": event.value, "threshold": event.threshold},
        reason=event.summary,
    )
