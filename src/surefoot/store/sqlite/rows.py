"""Row -> record conversions for the SQLite store."""

from __future__ import annotations

import json
import sqlite3

from surefoot.domain.audit import AuditEntry
from surefoot.domain.breaker import Breaker, BreakerState
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import (
    AttemptRecord,
    DeadLetter,
    EventRecord,
    JournalEntry,
    ReviewItem,
    RunRecord,
)
from surefoot.domain.status import (
    AttemptKind,
    AttemptOutcome,
    DeadLetterStatus,
    JournalKind,
    JournalStatus,
    ReviewStatus,
    RunStatus,
)
from surefoot.store.sqlite.values import dt, dt_required


def run_from_row(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        workflow=row["workflow"],
        queue=row["queue"],
        status=RunStatus(row["status"]),
        inputs=row["inputs"],
        inputs_hash=row["inputs_hash"],
        created_at=dt_required(row["created_at"]),
        updated_at=dt_required(row["updated_at"]),
        idempotency_key=row["idempotency_key"],
        priority=row["priority"],
        partition_key=row["partition_key"],
        debounce_key=row["debounce_key"],
        output=row["output"],
        error=row["error"],
        correlation_id=row["correlation_id"],
        forked_from_run_id=row["forked_from_run_id"],
        forked_at_position=row["forked_at_position"],
        wait_reason=row["wait_reason"],
        wake_at=dt(row["wake_at"]),
        waiting_for=row["waiting_for"],
        lease_owner=row["lease_owner"],
        lease_epoch=row["lease_epoch"],
        lease_expires_at=dt(row["lease_expires_at"]),
        generation=row["generation"],
        cancel_requested=bool(row["cancel_requested"]),
        deliveries=row["deliveries"],
        finished_at=dt(row["finished_at"]),
        trace_context=row["trace_context"],
    )


def journal_from_row(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        run_id=row["run_id"],
        position=row["position"],
        kind=JournalKind(row["kind"]),
        name=row["name"],
        status=JournalStatus(row["status"]),
        created_at=dt_required(row["created_at"]),
        output=row["output"],
        error=row["error"],
        wake_at=dt(row["wake_at"]),
        committed_at=dt(row["committed_at"]),
    )


def attempt_from_row(row: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        run_id=row["run_id"],
        position=row["position"],
        kind=AttemptKind(row["kind"]),
        attempt=row["attempt"],
        generation=row["generation"],
        step=row["step"],
        idempotency_key=row["idempotency_key"],
        outcome=AttemptOutcome(row["outcome"]),
        started_at=dt_required(row["started_at"]),
        inputs=row["inputs"],
        failure_class=FailureClass(row["failure_class"]) if row["failure_class"] else None,
        rule=row["rule"],
        route=row["route"],
        decision=row["decision"],
        error=row["error"],
        worker_id=row["worker_id"],
        finished_at=dt(row["finished_at"]),
    )


def event_from_row(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        event_seq=row["event_seq"],
        run_id=row["run_id"],
        name=row["name"],
        payload=row["payload"],
        sent_at=dt_required(row["sent_at"]),
        event_key=row["event_key"],
        consumed_position=row["consumed_position"],
    )


def review_from_row(row: sqlite3.Row) -> ReviewItem:
    return ReviewItem(
        item_id=row["item_id"],
        run_id=row["run_id"],
        position=row["position"],
        generation=row["generation"],
        kind=row["kind"],
        title=row["title"],
        actions=tuple(json.loads(row["actions"])),
        status=ReviewStatus(row["status"]),
        created_at=dt_required(row["created_at"]),
        payload=row["payload"],
        assignee_role=row["assignee_role"],
        priority=row["priority"],
        due_at=dt(row["due_at"]),
        decision=row["decision"],
        decided_by=row["decided_by"],
        decided_at=dt(row["decided_at"]),
        correlation_id=row["correlation_id"],
    )


def dead_letter_from_row(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter(
        run_id=row["run_id"],
        generation=row["generation"],
        workflow=row["workflow"],
        failure_class=FailureClass(row["failure_class"]),
        reason=row["reason"],
        attempts=row["attempts"],
        status=DeadLetterStatus(row["status"]),
        dead_lettered_at=dt_required(row["dead_lettered_at"]),
        last_error=row["last_error"],
        position=row["position"],
        step=row["step"],
        compensated=bool(row["compensated"]),
        resolved_at=dt(row["resolved_at"]),
        resolved_by=row["resolved_by"],
        resolution=row["resolution"],
    )


def breaker_from_row(row: sqlite3.Row) -> Breaker:
    return Breaker(
        key=row["breaker_key"],
        state=BreakerState(row["state"]),
        consecutive_failures=row["consecutive_failures"],
        opened_at=dt(row["opened_at"]),
        probe_owner=row["probe_owner"],
    )


def audit_from_row(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        before=json.loads(row["before"]) if row["before"] is not None else None,
        after=json.loads(row["after"]) if row["after"] is not None else None,
        reason=row["reason"],
        correlation_id=row["correlation_id"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
