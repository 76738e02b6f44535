"""Durable waits: sleep, wait for an event, ask a person. Each takes a position.

A wait that is not yet satisfied commits its journal entry and the run's new
status in one transaction, then unwinds the run (``Suspended``): no thread, no
memory is held. The run is claimed again when its ``wake_at`` passes, its event
arrives, or its review item is decided, and replay brings it back here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from surefoot.domain import codec
from surefoot.domain.ids import time_ordered_hex
from surefoot.domain.records import JournalEntry, ReviewItem
from surefoot.domain.status import JournalKind, JournalStatus, ReviewStatus, RunStatus
from surefoot.engine.context import Decision
from surefoot.engine.execution import ExecutionBase
from surefoot.errors import Parked, Suspended, WaitTimeoutError
from surefoot.store.base import Suspension


class WaitMixin(ExecutionBase):
    def sleep(self, seconds: float) -> None:
        position = self.next_position()
        entry = self.history.journal.get(position)
        now = self.rt.clock()
        if entry is not None:
            self.expect(entry, JournalKind.SLEEP, "sleep")
            wake_at = entry.wake_at or now
            if now >= wake_at:
                return
            self.suspend(Suspension(RunStatus.WAITING, "sleep", wake_at=wake_at))
            raise Suspended(self.run.run_id)
        self.checkpoint()
        wake_at = now + timedelta(seconds=max(0.0, seconds))
        entry = JournalEntry(
            self.run.run_id,
            position,
            JournalKind.SLEEP,
            "sleep",
            JournalStatus.COMMITTED,
            now,
            wake_at=wake_at,
            committed_at=now,
        )
        self.history.journal[position] = entry
        if seconds <= 0:
            self.fenced(lambda: self.rt.store.commit_journal(self.lease, entry))
            return
        self.suspend(Suspension(RunStatus.WAITING, "sleep", wake_at=wake_at, journal=entry))
        raise Suspended(self.run.run_id)

    def wait_for(self, name: str, timeout_s: float | None) -> Any:
        position = self.next_position()
        entry = self.history.journal.get(position)
        now = self.rt.clock()
        if entry is not None:
            self.expect(entry, JournalKind.WAIT, name)
            if entry.status is JournalStatus.COMMITTED:
                return codec.loads(entry.output)
            if entry.status is JournalStatus.RAISED:
                raise WaitTimeoutError(f"no event {name!r} arrived before the timeout")
            deadline = entry.wake_at
        else:
            self.checkpoint()
            deadline = now + timedelta(seconds=timeout_s) if timeout_s is not None else None
        event = self.fenced(
            lambda: self.rt.store.consume_event(self.lease, position=position, name=name, now=now)
        )
        if event is not None:
            self.history.journal[position] = JournalEntry(
                self.run.run_id,
                position,
                JournalKind.WAIT,
                name,
                JournalStatus.COMMITTED,
                now,
                output=event.payload,
                committed_at=now,
            )
            return codec.loads(event.payload)
        if deadline is not None and now >= deadline:
            timed_out = JournalEntry(
                self.run.run_id,
                position,
                JournalKind.WAIT,
                name,
                JournalStatus.RAISED,
                now,
                error=codec.canonical({"type": "surefoot.errors.WaitTimeoutError"}),
                wake_at=deadline,
                committed_at=now,
            )
            self.fenced(lambda: self.rt.store.commit_journal(self.lease, timed_out))
            self.history.journal[position] = timed_out
            raise WaitTimeoutError(f"no event {name!r} arrived before the timeout")
        pending = JournalEntry(
            self.run.run_id,
            position,
            JournalKind.WAIT,
            name,
            JournalStatus.PENDING,
            now,
            wake_at=deadline,
        )
        self.suspend(
            Suspension(
                RunStatus.WAITING,
                f"event:{name}",
                wake_at=deadline,
                waiting_for=name,
                journal=pending,
            )
        )
        raise Suspended(self.run.run_id)

    def review(
        self,
        kind: str,
        *,
        payload: Any,
        actions: tuple[str, ...],
        title: str | None,
        assignee_role: str | None,
        priority: int,
        sla: timedelta | None,
    ) -> Decision:
        position = self.next_position()
        entry = self.history.journal.get(position)
        now = self.rt.clock()
        if entry is not None:
            self.expect(entry, JournalKind.REVIEW, kind)
            if entry.status is JournalStatus.COMMITTED:
                return _decision(json.loads(entry.output or "{}"))
            items = self.history.reviews.get(position, [])
            item = items[-1] if items else None
            if item is not None and item.status is ReviewStatus.DECIDED:
                data = json.loads(item.decision or "{}") | {
                    "decided_by": item.decided_by,
                    "item_id": item.item_id,
                }
                committed = JournalEntry(
                    self.run.run_id,
                    position,
                    JournalKind.REVIEW,
                    kind,
                    JournalStatus.COMMITTED,
                    entry.created_at,
                    output=codec.canonical(data),
                    committed_at=now,
                )
                self.fenced(lambda: self.rt.store.commit_journal(self.lease, committed))
                self.history.journal[position] = committed
                return _decision(data)
            wait = f"review:{item.item_id}" if item else "review"
            self.suspend(Suspension(RunStatus.NEEDS_REVIEW, wait))
            raise Parked(self.run.run_id)
        if not actions:
            raise ValueError("ctx.review needs at least one action")
        self.checkpoint()
        item = ReviewItem(
            item_id=time_ordered_hex(),
            run_id=self.run.run_id,
            position=position,
            generation=self.run.generation,
            kind=kind,
            title=title or kind,
            actions=actions,
            status=ReviewStatus.OPEN,
            created_at=now,
            payload=codec.dumps(payload, what="the review payload"),
            assignee_role=assignee_role,
            priority=priority,
            due_at=now + sla if sla is not None else None,
            correlation_id=self.run.correlation_id,
        )
        pending = JournalEntry(
            self.run.run_id, position, JournalKind.REVIEW, kind, JournalStatus.PENDING, now
        )
        self.suspend(
            Suspension(
                RunStatus.NEEDS_REVIEW, f"review:{item.item_id}", journal=pending, review=item
            )
        )
        self.history.journal[position] = pending
        self.record_review(item)
        raise Parked(item.item_id)


def _decision(data: dict[str, Any]) -> Decision:
    return Decision(
        action=data.get("action", ""),
        value=data.get("value"),
        decided_by=data.get("decided_by"),
        comment=data.get("comment"),
        item_id=data.get("item_id"),
    )
