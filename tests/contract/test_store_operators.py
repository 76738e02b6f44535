"""Store contract, continued: operator actions, and the audit chain after every operation."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from surefoot.domain.failures import FailureClass
from surefoot.domain.records import (
    AuditRecord,
    DeadLetter,
    DeadLetterFilter,
    JournalEntry,
    ReviewItem,
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
from surefoot.errors import InvalidTransitionError, ReviewItemNotFoundError, RunNotFoundError
from surefoot.store.base import RunEnd, Store, Suspension
from tests.contract.support import (
    ACTOR,
    SUCCEEDED,
    T0,
    assert_chain_intact,
    at,
    attempt,
    claim_none,
    claim_one,
    committed_step,
    new_run,
    open_dead_letters,
    state,
)


def dead_letter(run_id: str, *, compensated: bool = False) -> DeadLetter:
    return DeadLetter(
        run_id=run_id,
        generation=0,
        workflow="flow",
        failure_class=FailureClass.PERMANENT,
        reason="step charge: permanent -> fail",
        attempts=1,
        status=DeadLetterStatus.OPEN,
        dead_lettered_at=at(5),
        last_error="PermanentError: card declined",
        position=1,
        step="charge",
        compensated=compensated,
    )


def failed_run(store: Store, *, compensated: bool = False) -> str:
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    end = RunEnd(
        RunStatus.FAILED,
        error='{"reason":"declined"}',
        dead_letter=dead_letter(record.run_id, compensated=compensated),
    )
    store.finish_run(lease, end, at(5))
    return record.run_id


def review_item(run_id: str, *, actions: tuple[str, ...] = ("approve", "reject")) -> ReviewItem:
    return ReviewItem(
        item_id=f"item-{run_id[:8]}",
        run_id=run_id,
        position=1,
        generation=0,
        kind="approve",
        title="Approve it",
        actions=actions,
        status=ReviewStatus.OPEN,
        created_at=at(2),
        payload='{"amount":10}',
    )


def parked_run(store: Store) -> tuple[str, ReviewItem]:
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    item = review_item(record.run_id)
    pending = JournalEntry(
        record.run_id, 1, JournalKind.REVIEW, "approve", JournalStatus.PENDING, at(2)
    )
    store.suspend(
        lease,
        Suspension(RunStatus.NEEDS_REVIEW, f"review:{item.item_id}", journal=pending, review=item),
        at(2),
    )
    return record.run_id, item


def test_finished_run_with_a_dead_letter_is_listed_with_its_reason(store):
    run_id = failed_run(store)
    run = store.get_run(run_id)
    assert run is not None
    assert (run.status, run.lease_owner, run.finished_at) == (RunStatus.FAILED, None, at(5))
    dead = store.get_dead_letter(run_id)
    assert dead is not None
    assert (dead.failure_class, dead.reason, dead.status) == (
        FailureClass.PERMANENT,
        "step charge: permanent -> fail",
        DeadLetterStatus.OPEN,
    )
    assert open_dead_letters(store) == [run_id]
    assert [
        d.run_id for d in store.list_dead_letters(DeadLetterFilter(reason_contains="CARD"))
    ] == [run_id]


def test_redrive_resumes_the_same_run_in_a_new_generation(store):
    run_id = failed_run(store)
    store.redrive(run_id, actor=ACTOR, reason="card updated", now=at(10))
    run = store.get_run(run_id)
    assert run is not None
    assert (run.status, run.generation, run.error, run.finished_at) == (
        RunStatus.PENDING,
        1,
        None,
        None,
    )
    assert run.deliveries == 0, "a redriven run starts its delivery count afresh"
    assert open_dead_letters(store) == []
    assert store.get_dead_letter(run_id).status is DeadLetterStatus.REDRIVEN
    assert claim_one(store, "w2", at(11)).run.generation == 1


def test_compensated_run_cannot_be_redriven(store):
    run_id = failed_run(store, compensated=True)
    before = state(store, run_id)
    with pytest.raises(InvalidTransitionError, match="fork it"):
        store.redrive(run_id, actor=ACTOR, reason=None, now=at(10))
    assert state(store, run_id) == before


def test_discard_closes_the_entry_and_the_run_stays_failed(store):
    run_id = failed_run(store)
    store.discard(run_id, actor=ACTOR, reason="duplicate invoice", now=at(10))
    dead = store.get_dead_letter(run_id)
    assert dead is not None
    assert (dead.status, dead.resolved_by, dead.resolution) == (
        DeadLetterStatus.DISCARDED,
        ACTOR,
        "duplicate invoice",
    )
    assert store.get_run(run_id).status is RunStatus.FAILED
    with pytest.raises(InvalidTransitionError):
        store.redrive(run_id, actor=ACTOR, reason=None, now=at(11))


def test_redrive_or_discard_of_an_unknown_run_is_run_not_found(store):
    with pytest.raises(RunNotFoundError):
        store.redrive("nope", actor=ACTOR, reason=None, now=T0)
    with pytest.raises(RunNotFoundError):
        store.discard("nope", actor=ACTOR, reason="x", now=T0)


def test_deciding_a_review_item_makes_its_run_claimable(store):
    run_id, item = parked_run(store)
    assert store.get_run(run_id).status is RunStatus.NEEDS_REVIEW
    assert [i.item_id for i in store.list_reviews(ReviewStatus.OPEN, 10, 0)] == [item.item_id]
    claim_none(store, "w1", at(100))
    decided = store.decide_review(
        item.item_id, decision='{"action":"approve"}', actor="approver-1", reason="ok", now=at(3)
    )
    assert (decided.status, decided.decided_by, decided.decided_at) == (
        ReviewStatus.DECIDED,
        "approver-1",
        at(3),
    )
    assert json.loads(decided.decision or "{}") == {"action": "approve"}
    claimed = claim_one(store, "w2", at(4))
    assert claimed.history.reviews[1][0].status is ReviewStatus.DECIDED


def test_review_item_is_decided_once(store):
    _run_id, item = parked_run(store)
    store.decide_review(
        item.item_id, decision='{"action":"approve"}', actor="a", reason=None, now=at(3)
    )
    head = store.audit_head()
    with pytest.raises(InvalidTransitionError, match="not open"):
        store.decide_review(
            item.item_id, decision='{"action":"reject"}', actor="b", reason=None, now=at(4)
        )
    assert store.audit_head() == head
    assert store.get_review(item.item_id).decided_by == "a"
    with pytest.raises(ReviewItemNotFoundError):
        store.decide_review("nope", decision="{}", actor="a", reason=None, now=at(4))


def test_cancel_of_a_parked_run_makes_it_claimable_and_closes_its_review_items(store):
    run_id, item = parked_run(store)
    run = store.request_cancel(run_id, actor=ACTOR, reason="withdrawn", now=at(3))
    assert run.cancel_requested
    assert run.status is RunStatus.PENDING
    assert store.get_review(item.item_id).status is ReviewStatus.CANCELLED
    assert claim_one(store, "w1", at(4)).run.cancel_requested


def test_cancel_of_a_run_waiting_for_an_event_makes_it_claimable_at_once(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.suspend(
        lease, Suspension(RunStatus.WAITING, "event:go", wake_at=at(3600), waiting_for="go"), at(1)
    )
    run = store.request_cancel(record.run_id, actor=ACTOR, reason="withdrawn", now=at(2))
    assert (run.status, run.wake_at, run.waiting_for) == (RunStatus.PENDING, None, None)
    assert claim_one(store, "w2", at(3)).run.cancel_requested


def test_fork_copies_committed_history_before_the_position_only(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    for position in (1, 2):
        store.begin_attempt(lease, attempt(lease, at(position), position=position))
        store.finish_attempt(
            lease,
            position=position,
            kind=AttemptKind.STEP,
            attempt=1,
            result=SUCCEEDED,
            journal=committed_step(record.run_id, at(position), position=position),
            now=at(position),
        )
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, output='"ok"'), at(3))
    fork = new_run(inputs={"n": 2})
    forked = store.fork_run(record.run_id, at_position=2, new=fork, actor=ACTOR, now=at(4))
    assert (forked.status, forked.run_id) == (RunStatus.PENDING, fork.run_id)
    assert [e.position for e in store.list_journal(fork.run_id)] == [1]
    assert [e.position for e in store.list_journal(record.run_id)] == [1, 2]
    with pytest.raises(RunNotFoundError):
        store.fork_run("nope", at_position=1, new=new_run(), actor=ACTOR, now=at(5))


# -- the audit chain -----------------------------------------------------------------------------


def lifecycle(store: Store) -> list[tuple[str, Callable[[], Any]]]:
    """A run through every kind of state change, one named operation at a time."""
    ctx: dict[str, Any] = {}

    def create() -> None:
        ctx["run_id"] = store.create_run(new_run(idempotency_key="k1"), T0, ACTOR)[0].run_id

    def claim() -> None:
        ctx["lease"] = claim_one(store, "w1", at(1)).lease

    def begin() -> None:
        store.begin_attempt(ctx["lease"], attempt(ctx["lease"], at(2)))

    def takeover() -> None:
        ctx["lease"] = claim_one(store, "w2", at(20)).lease

    def begin_again() -> None:
        store.begin_attempt(ctx["lease"], attempt(ctx["lease"], at(21), number=2))

    def finish() -> None:
        store.finish_attempt(
            ctx["lease"],
            position=1,
            kind=AttemptKind.STEP,
            attempt=2,
            result=SUCCEEDED,
            journal=committed_step(ctx["run_id"], at(22)),
            now=at(22),
        )

    def event() -> None:
        store.send_event(ctx["run_id"], "go", '"x"', event_key="e", now=at(23), actor=ACTOR)

    def consume() -> None:
        store.consume_event(ctx["lease"], position=2, name="go", now=at(24))

    def park() -> None:
        item = replace_positions(review_item(ctx["run_id"]), position=3, at_s=25)
        ctx["item"] = item
        store.suspend(
            ctx["lease"], Suspension(RunStatus.NEEDS_REVIEW, "review", review=item), at(25)
        )

    def decide() -> None:
        store.decide_review(
            ctx["item"].item_id, decision='{"action":"approve"}', actor="a", reason=None, now=at(26)
        )

    def reclaim() -> None:
        ctx["lease"] = claim_one(store, "w1", at(27)).lease

    def fail() -> None:
        end = RunEnd(RunStatus.FAILED, error="{}", dead_letter=dead_letter(ctx["run_id"]))
        store.finish_run(ctx["lease"], end, at(28))

    def redrive() -> None:
        store.redrive(ctx["run_id"], actor=ACTOR, reason="retry", now=at(29))

    def pause() -> None:
        store.set_queue_paused("default", paused=True, actor=ACTOR, reason=None, now=at(30))

    def operator_note() -> None:
        store.append_audit(AuditRecord(ACTOR, "note", "run", ctx["run_id"], reason="hi"), at(31))

    def cancel() -> None:
        store.request_cancel(ctx["run_id"], actor=ACTOR, reason="stop", now=at(32))

    return [
        (f.__name__, f)
        for f in (
            create, claim, begin, takeover, begin_again, finish, event, consume, park, decide,
            reclaim, fail, redrive, pause, operator_note, cancel,
        )
    ]  # fmt: skip


def replace_positions(item: ReviewItem, *, position: int, at_s: float) -> ReviewItem:
    return replace(item, position=position, created_at=at(at_s))


def test_audit_chain_verifies_after_every_operation_and_grows_with_each(store):
    counts = [assert_chain_intact(store)]
    for name, operation in lifecycle(store):
        operation()
        counts.append(assert_chain_intact(store))
        assert counts[-1] > counts[-2], f"{name} changed state without an audit entry"


def test_audit_entries_can_be_read_per_run(store):
    first, _ = store.create_run(new_run(), T0, ACTOR)
    second, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", at(1)).lease
    store.begin_attempt(lease, attempt(lease, at(2)))
    mine = store.audit_entries(after_seq=0, limit=100, entity_id=lease.run_id)
    assert {e.action for e in mine} == {"run.created", "run.claimed", "attempt.started"}
    assert all(e.entity_id.startswith(lease.run_id) for e in mine)
    other = first if lease.run_id == second.run_id else second
    assert [
        e.action for e in store.audit_entries(after_seq=0, limit=100, entity_id=other.run_id)
    ] == ["run.created"]


def test_audit_entries_page_by_sequence(store):
    for _ in range(5):
        store.create_run(new_run(), T0, ACTOR)
    page1 = store.audit_entries(after_seq=0, limit=2)
    page2 = store.audit_entries(after_seq=page1[-1].seq, limit=2)
    rest = store.audit_entries(after_seq=page2[-1].seq, limit=100)
    assert [e.seq for e in page1 + page2 + rest] == [1, 2, 3, 4, 5]
    assert store.audit_head() == (5, rest[-1].hash)


def test_no_audit_entry_waits_for_the_chain_once_the_log_is_read(store):
    for n in range(3):
        store.create_run(new_run(), at(n), ACTOR)
    assert_chain_intact(store)  # a read of the log: every entry committed before is chained
    backlog = store.audit_backlog()
    assert (backlog.transactions, backlog.oldest_at) == (0, None)


def test_open_attempt_interrupted_by_takeover_is_audited_with_the_reason(store):
    store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.begin_attempt(lease, attempt(lease, at(1)))
    claim_one(store, "w2", at(30))
    (entry,) = [
        e for e in store.audit_entries(after_seq=0, limit=100) if e.action == "attempt.interrupted"
    ]
    assert entry.before == {"outcome": "running"}
    assert entry.after == {"outcome": AttemptOutcome.INTERRUPTED.value}
    assert entry.reason is not None
    assert "w1" in entry.reason
