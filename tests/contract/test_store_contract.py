"""The Store protocol's conformance suite: intake, claims and leases, fenced writes, waits.

Every test takes the parametrized ``store`` fixture, so each implementation must pass all of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta, timezone

import pytest

from surefoot.domain.failures import FailureClass
from surefoot.domain.records import AttemptResult, Lease, RunFilter
from surefoot.domain.status import AttemptKind, AttemptOutcome, RunStatus
from surefoot.errors import (
    IdempotencyKeyConflictError,
    LeaseLostError,
    RunAlreadyFinishedError,
    RunNotFoundError,
    StoreError,
)
from surefoot.store.base import AttemptEnd, RunEnd, StepCommit, Store, Suspension
from tests.contract.support import (
    ACTOR,
    LEASE_S,
    SUCCEEDED,
    T0,
    assert_chain_intact,
    at,
    attempt,
    claim_none,
    claim_one,
    commit_first_step,
    committed_step,
    new_run,
    state,
)

# -- intake ------------------------------------------------------------------------------------


def test_create_run_commits_a_pending_run(store):
    new = new_run(idempotency_key="INV-1", priority=3)
    record, created = store.create_run(new, T0, ACTOR)
    assert created
    assert (record.run_id, record.workflow, record.queue, record.status) == (
        new.run_id,
        "flow",
        "default",
        RunStatus.PENDING,
    )
    assert (record.inputs, record.inputs_hash, record.idempotency_key) == (
        new.inputs,
        new.inputs_hash,
        "INV-1",
    )
    assert (record.priority, record.lease_epoch, record.deliveries) == (3, 0, 0)
    assert record.created_at == T0
    assert store.get_run(new.run_id) == record
    assert store.find_run("INV-1") == record
    assert store.find_run(new.run_id) == record


def test_a_start_returns_the_run_exactly_as_stored_in_every_field(store):
    # A start that reads nothing first may build the record it returns without reading
    # the row back: every field must still be what the store holds.
    plain = new_run(priority=-2, partition_key="acct-9")
    traced = replace(
        new_run(),
        correlation_id="corr-1",
        forked_from_run_id=plain.run_id,
        forked_at_position=4,
        trace_context="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    later = replace(new_run(), not_before=at(30).astimezone(timezone(timedelta(hours=2))))
    for new in (plain, traced, later):
        (record, created), *_ = store.create_runs([new], at(1), ACTOR)
        assert created
        assert store.get_run(new.run_id) == record
        assert record.created_at == record.updated_at == at(1)
    waiting = store.get_run(later.run_id)
    assert waiting is not None
    assert (waiting.status, waiting.wait_reason, waiting.wake_at) == (
        RunStatus.WAITING,
        "debounce",
        at(30),
    )


def test_create_run_with_a_known_key_and_same_inputs_returns_the_existing_run(store):
    first, _ = store.create_run(new_run(idempotency_key="INV-1"), T0, ACTOR)
    again, created = store.create_run(new_run(idempotency_key="INV-1"), at(5), ACTOR)
    assert not created
    assert again == first
    assert store.count_runs(RunFilter()) == 1


@pytest.mark.parametrize(
    "conflicting",
    [
        new_run(idempotency_key="INV-1", inputs={"n": 2}),
        new_run("other_flow", idempotency_key="INV-1"),
    ],
)
def test_create_run_with_a_known_key_and_other_inputs_conflicts_and_writes_nothing(
    store, conflicting
):
    first, _ = store.create_run(new_run(idempotency_key="INV-1"), T0, ACTOR)
    before = state(store, first.run_id)
    with pytest.raises(IdempotencyKeyConflictError, match=first.run_id):
        store.create_run(conflicting, at(5), ACTOR)
    assert state(store, first.run_id) == before
    assert store.get_run(conflicting.run_id) is None


def test_runs_without_a_key_are_never_merged(store):
    store.create_run(new_run(), T0, ACTOR)
    store.create_run(new_run(), T0, ACTOR)
    assert store.count_runs(RunFilter()) == 2


def test_unknown_run_reads_as_none(store):
    assert store.get_run("nope") is None
    assert store.find_run("nope") is None


# -- claims and leases ---------------------------------------------------------------------------


def test_claim_leases_the_run_and_bumps_its_epoch(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    claimed = claim_one(store, "w1", at(1))
    assert claimed.lease == Lease(record.run_id, "w1", record.lease_epoch + 1)
    run = claimed.run
    assert run.status is RunStatus.RUNNING
    assert run.lease_owner == "w1"
    assert run.lease_epoch == record.lease_epoch + 1
    assert run.lease_expires_at == at(1 + LEASE_S)
    assert run.deliveries == 1
    assert store.get_run(record.run_id) == run
    assert claimed.interrupted == ()


def test_leased_run_is_not_claimed_again_before_its_lease_expires(store):
    store.create_run(new_run(), T0, ACTOR)
    claim_one(store, "w1", T0)
    claim_none(store, "w2", at(LEASE_S - 0.001))
    claim_none(store, "w1", at(1))


def test_claim_only_takes_the_workflows_and_queues_asked_for(store):
    store.create_run(new_run("other"), T0, ACTOR)
    store.create_run(new_run(queue="slow"), T0, ACTOR)
    claim_none(store, "w1", at(1), workflows=["flow"], queues=["fast"])
    claim_none(store, "w1", at(1), workflows=["missing"])
    assert claim_one(store, "w1", at(1), queues=["slow"]).run.queue == "slow"
    assert claim_one(store, "w1", at(1), workflows=["other"]).run.workflow == "other"


def test_claim_respects_the_limit_and_takes_higher_priority_first(store):
    low, _ = store.create_run(new_run(priority=0), T0, ACTOR)
    high, _ = store.create_run(new_run(priority=9), at(1), ACTOR)
    older, _ = store.create_run(new_run(priority=0), at(-1), ACTOR)
    claimed = store.claim(
        "w1", workflows=["flow"], queues=None, limit=2, lease_s=LEASE_S, now=at(2)
    )
    assert [c.run.run_id for c in claimed] == [high.run_id, older.run_id]
    assert store.get_run(low.run_id).status is RunStatus.PENDING
    assert store.claim("w1", workflows=["flow"], queues=None, limit=0, lease_s=1, now=at(2)) == []


def test_claim_skips_paused_queues_until_they_resume(store):
    record, _ = store.create_run(new_run(queue="invoices"), T0, ACTOR)
    store.set_queue_paused("invoices", paused=True, actor=ACTOR, reason="vendor down", now=T0)
    claim_none(store, "w1", at(1))
    assert ("invoices", True, 1) in store.list_queues()
    store.set_queue_paused("invoices", paused=False, actor=ACTOR, reason=None, now=at(2))
    assert claim_one(store, "w1", at(3)).run.run_id == record.run_id


def test_runs_sharing_a_partition_key_are_claimed_one_at_a_time_in_order(store):
    first, _ = store.create_run(new_run(partition_key="vendor-1"), T0, ACTOR)
    second, _ = store.create_run(new_run(partition_key="vendor-1", priority=9), at(1), ACTOR)
    other, _ = store.create_run(new_run(partition_key="vendor-2"), at(2), ACTOR)
    claimed = store.claim(
        "w1", workflows=["flow"], queues=None, limit=10, lease_s=LEASE_S, now=at(3)
    )
    assert {c.run.run_id for c in claimed} == {first.run_id, other.run_id}
    lease = next(c.lease for c in claimed if c.run.run_id == first.run_id)
    store.suspend(lease, Suspension(RunStatus.WAITING, "sleep", wake_at=at(100)), at(4))
    claim_none(store, "w1", at(5))
    again = claim_one(store, "w1", at(100))
    assert again.run.run_id == first.run_id
    store.finish_run(again.lease, RunEnd(RunStatus.SUCCEEDED, output="null"), at(101))
    assert claim_one(store, "w1", at(102)).run.run_id == second.run_id


def test_deliveries_count_claims_since_the_last_durable_stop(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    first = claim_one(store, "w1", T0)
    assert first.run.deliveries == 1
    store.suspend(first.lease, Suspension(RunStatus.WAITING, "sleep", wake_at=at(1)), at(0.5))
    assert store.get_run(record.run_id).deliveries == 0
    claim_one(store, "w1", at(1))
    assert claim_one(store, "w2", at(1 + LEASE_S)).run.deliveries == 2


def test_expired_lease_is_taken_over_with_a_new_epoch_and_open_attempts_interrupted(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    first = claim_one(store, "w1", T0)
    store.begin_attempt(first.lease, attempt(first.lease, at(1)))
    claim_none(store, "w2", at(LEASE_S - 1))
    taken = claim_one(store, "w2", at(LEASE_S))
    assert taken.lease == Lease(record.run_id, "w2", first.lease.epoch + 1)
    assert taken.run.lease_owner == "w2"
    assert taken.run.deliveries == 2
    (interrupted,) = taken.interrupted
    assert (interrupted.position, interrupted.attempt) == (1, 1)
    assert interrupted.outcome is AttemptOutcome.INTERRUPTED
    (stored,) = store.list_attempts(record.run_id)
    assert stored.outcome is AttemptOutcome.INTERRUPTED
    assert stored.finished_at == at(LEASE_S)
    assert taken.history.attempts[1][0].outcome is AttemptOutcome.INTERRUPTED
    actions = [e.action for e in store.audit_entries(after_seq=0, limit=100)]
    assert "run.taken_over" in actions
    assert "attempt.interrupted" in actions


def test_takeover_leaves_finished_attempts_alone(store):
    store.create_run(new_run(), T0, ACTOR)
    first = claim_one(store, "w1", T0)
    commit_first_step(store, first.lease, at(1), at(2))
    taken = claim_one(store, "w2", at(LEASE_S + 1))
    assert taken.interrupted == ()
    assert store.list_attempts(first.lease.run_id)[0].outcome is AttemptOutcome.SUCCEEDED
    assert taken.history.journal[1].output == '"ok"'


def test_one_claim_of_several_runs_gives_each_its_own_lease_history_and_interruptions(store):
    """A claim takes several runs in a few statements; nothing of one run may reach another."""
    interrupted_run, _ = store.create_run(new_run(priority=3), T0, ACTOR)
    finished_step_run, _ = store.create_run(new_run(priority=2), T0, ACTOR)
    first = store.claim("w1", workflows=["flow"], queues=None, limit=2, lease_s=LEASE_S, now=T0)
    leases = {claimed.run.run_id: claimed.lease for claimed in first}
    store.begin_attempt(
        leases[interrupted_run.run_id], attempt(leases[interrupted_run.run_id], at(1))
    )
    commit_first_step(store, leases[finished_step_run.run_id], at(1), at(2))
    fresh, _ = store.create_run(new_run(priority=1), at(3), ACTOR)

    taken = store.claim(
        "w2", workflows=["flow"], queues=None, limit=10, lease_s=LEASE_S, now=at(LEASE_S + 1)
    )

    by_id = {claimed.run.run_id: claimed for claimed in taken}
    assert [claimed.run.run_id for claimed in taken] == [
        interrupted_run.run_id,
        finished_step_run.run_id,
        fresh.run_id,
    ]
    for run_id, claimed in by_id.items():
        assert claimed.run.lease_owner == "w2"
        assert claimed.run.status is RunStatus.RUNNING
        assert claimed.lease == Lease(run_id, "w2", claimed.run.lease_epoch)
    assert by_id[fresh.run_id].lease.epoch == 1
    assert by_id[interrupted_run.run_id].lease.epoch == 2
    assert [by_id[r].taken_over for r in (interrupted_run.run_id, fresh.run_id)] == [True, False]
    (stopped,) = by_id[interrupted_run.run_id].interrupted
    assert (stopped.run_id, stopped.outcome) == (interrupted_run.run_id, AttemptOutcome.INTERRUPTED)
    assert by_id[finished_step_run.run_id].interrupted == ()
    assert by_id[fresh.run_id].interrupted == ()
    assert by_id[interrupted_run.run_id].history.journal == {}
    assert by_id[interrupted_run.run_id].history.attempts[1][0].outcome is (
        AttemptOutcome.INTERRUPTED
    )
    assert by_id[finished_step_run.run_id].history.journal[1].output == '"ok"'
    assert by_id[finished_step_run.run_id].history.attempts[1][0].outcome is (
        AttemptOutcome.SUCCEEDED
    )
    assert by_id[fresh.run_id].history.journal == {}
    assert by_id[fresh.run_id].history.attempts == {}
    claims = [
        (e.entity_id, e.action, e.correlation_id)
        for e in store.audit_entries(after_seq=0, limit=100)
        if e.action in ("run.claimed", "run.taken_over") and e.actor == "worker:w2"
    ]
    assert claims == [
        (interrupted_run.run_id, "run.taken_over", interrupted_run.correlation_id),
        (finished_step_run.run_id, "run.taken_over", finished_step_run.correlation_id),
        (fresh.run_id, "run.claimed", fresh.correlation_id),
    ]
    assert_chain_intact(store)


RETRIED_AFTER_INTERRUPTION = AttemptResult(
    AttemptOutcome.INTERRUPTED,
    FailureClass.TRANSIENT,
    "interrupted",
    "retry",
    "retry at once",
    None,
)


def test_begin_attempt_after_an_interruption_commits_its_route_and_the_retry_together(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    first = claim_one(store, "w1", T0)
    store.begin_attempt(first.lease, attempt(first.lease, at(1)))
    taken = claim_one(store, "w2", at(LEASE_S))
    before = len(store.audit_entries(after_seq=0, limit=100))

    end = AttemptEnd(1, AttemptKind.STEP, 1, RETRIED_AFTER_INTERRUPTION, at(LEASE_S + 1))
    store.begin_attempt(taken.lease, attempt(taken.lease, at(LEASE_S + 2), number=2), after=end)

    interrupted, retry = store.list_attempts(record.run_id)
    assert (interrupted.attempt, interrupted.outcome) == (1, AttemptOutcome.INTERRUPTED)
    assert (interrupted.failure_class, interrupted.rule, interrupted.route) == (
        FailureClass.TRANSIENT,
        "interrupted",
        "retry",
    )
    assert interrupted.finished_at == at(LEASE_S + 1)
    assert (retry.attempt, retry.outcome, retry.started_at) == (
        2,
        AttemptOutcome.RUNNING,
        at(LEASE_S + 2),
    )
    # The route is audited before the retry's start, in the order they happened.
    added = store.audit_entries(after_seq=0, limit=100)[before:]
    assert [(e.action, e.entity_id) for e in added] == [
        ("attempt.finished", f"{record.run_id}/1/1"),
        ("attempt.started", f"{record.run_id}/1/2"),
    ]
    assert_chain_intact(store)


def test_heartbeat_renews_held_leases(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    claimed = claim_one(store, "w1", T0)
    lost, cancels = store.heartbeat("w1", [claimed.lease], LEASE_S, at(8))
    assert (lost, cancels) == (set(), set())
    assert store.get_run(record.run_id).lease_expires_at == at(8 + LEASE_S)
    claim_none(store, "w2", at(LEASE_S + 2))


def test_heartbeat_reports_a_lease_lost_to_another_worker_and_does_not_extend_it(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    stale = claim_one(store, "w1", T0).lease
    fresh = claim_one(store, "w2", at(LEASE_S)).lease
    lost, _ = store.heartbeat("w1", [stale], LEASE_S, at(LEASE_S + 1))
    assert lost == {record.run_id}
    run = store.get_run(record.run_id)
    assert run is not None
    assert (run.lease_owner, run.lease_epoch) == ("w2", fresh.epoch)
    assert run.lease_expires_at == at(2 * LEASE_S)


def test_heartbeat_reports_a_cancel_requested_for_a_held_run(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.request_cancel(record.run_id, actor=ACTOR, reason="stop", now=at(1))
    assert store.heartbeat("w1", [lease], LEASE_S, at(2)) == (set(), {record.run_id})


def test_release_hands_the_run_back_for_any_worker(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.begin_attempt(lease, attempt(lease, at(1)))
    store.release(lease, at(2), interrupt_open_attempts=True)
    run = store.get_run(record.run_id)
    assert run is not None
    assert (run.status, run.lease_owner) == (RunStatus.PENDING, None)
    assert store.list_attempts(record.run_id)[0].outcome is AttemptOutcome.INTERRUPTED
    assert claim_one(store, "w2", at(3)).lease.epoch == lease.epoch + 1


# -- fenced writes ---------------------------------------------------------------------------------


def _stale_and_fresh(store: Store) -> tuple[str, Lease, Lease]:
    """A run taken over by w2 while w1's attempt was open: w1 holds a stale lease."""
    record, _ = store.create_run(new_run(), T0, ACTOR)
    stale = claim_one(store, "w1", T0).lease
    store.begin_attempt(stale, attempt(stale, at(1)))
    fresh = claim_one(store, "w2", at(LEASE_S)).lease
    return record.run_id, stale, fresh


FENCED_WRITES: dict[str, Callable[[Store, Lease], object]] = {
    "begin_attempt": lambda s, lease: s.begin_attempt(lease, attempt(lease, at(11), number=2)),
    "begin_attempt_after": lambda s, lease: s.begin_attempt(
        lease,
        attempt(lease, at(11), number=2),
        after=AttemptEnd(1, AttemptKind.STEP, 1, RETRIED_AFTER_INTERRUPTION, at(11)),
    ),
    "finish_attempt": lambda s, lease: s.finish_attempt(
        lease,
        position=1,
        kind=AttemptKind.STEP,
        attempt=1,
        result=SUCCEEDED,
        journal=committed_step(lease.run_id, at(11)),
        now=at(11),
    ),
    "commit_journal": lambda s, lease: s.commit_journal(
        lease, committed_step(lease.run_id, at(11))
    ),
    "consume_event": lambda s, lease: s.consume_event(lease, position=1, name="go", now=at(11)),
    "suspend": lambda s, lease: s.suspend(
        lease, Suspension(RunStatus.WAITING, "sleep", wake_at=at(60)), at(11)
    ),
    "finish_run": lambda s, lease: s.finish_run(
        lease, RunEnd(RunStatus.SUCCEEDED, output='"done"'), at(11)
    ),
    "commit_steps": lambda s, lease: s.commit_steps(
        lease, [_last_step(lease, written=False, position=p) for p in (2, 3)]
    ),
    "finish_run_with_step": lambda s, lease: s.finish_run(
        lease,
        RunEnd(RunStatus.SUCCEEDED, output='"done"', steps=(_last_step(lease, written=False),)),
        at(11),
    ),
    "release": lambda s, lease: s.release(lease, at(11), interrupt_open_attempts=True),
    "start_compensating": lambda s, lease: s.start_compensating(lease, "undo", None, at(11)),
}


def _last_step(lease: Lease, *, written: bool, position: int = 2) -> StepCommit:
    """The end of the attempt at ``position``, left for the run's end (a step started at
    10.5, ended at 10.8)."""
    return StepCommit(
        attempt(lease, at(10.5), position=position),
        start_written=written,
        result=SUCCEEDED,
        journal=committed_step(lease.run_id, at(10.8), position=position),
        at=at(10.8),
    )


def test_every_fenced_write_with_a_stale_lease_raises_lease_lost_and_writes_nothing(store):
    for name, write in FENCED_WRITES.items():
        run_id, stale, _fresh = _stale_and_fresh(store)
        store.send_event(run_id, "go", '"x"', event_key=None, now=at(10.5), actor=ACTOR)
        before = state(store, run_id)
        with pytest.raises(LeaseLostError, match="nothing was written"):
            write(store, stale)
        assert state(store, run_id) == before, f"{name} wrote with a stale lease"
    assert_chain_intact(store)


def test_every_fenced_write_with_another_workers_lease_is_refused(store):
    for name, write in FENCED_WRITES.items():
        run_id, _stale, fresh = _stale_and_fresh(store)
        forged = replace(fresh, worker_id="w3")
        before = state(store, run_id)
        with pytest.raises(LeaseLostError):
            write(store, forged)
        assert state(store, run_id) == before, f"{name} wrote with a forged lease"


def test_lease_of_a_run_that_suspended_can_no_longer_write(store):
    for name in ("begin_attempt", "finish_run", "suspend", "commit_journal"):
        record, _ = store.create_run(new_run(), T0, ACTOR)
        lease = claim_one(store, "w1", T0).lease
        store.suspend(lease, Suspension(RunStatus.WAITING, "sleep", wake_at=at(60)), at(1))
        before = state(store, record.run_id)
        with pytest.raises(LeaseLostError):
            FENCED_WRITES[name](store, lease)
        assert state(store, record.run_id) == before, f"{name} wrote after the run suspended"


def test_fresh_lease_still_writes_after_the_stale_one_was_refused(store):
    run_id, stale, fresh = _stale_and_fresh(store)
    with pytest.raises(LeaseLostError):
        store.finish_run(stale, RunEnd(RunStatus.SUCCEEDED, output='"stale"'), at(11))
    store.finish_run(fresh, RunEnd(RunStatus.SUCCEEDED, output='"fresh"'), at(12))
    run = store.get_run(run_id)
    assert run is not None
    assert (run.status, run.output, run.lease_owner) == (RunStatus.SUCCEEDED, '"fresh"', None)


# -- attempts, journal, waits and events ----------------------------------------------------------


def test_finished_attempt_and_its_journal_entry_commit_together(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.begin_attempt(lease, attempt(lease, at(1)))
    failed = AttemptResult(AttemptOutcome.FAILED, None, "declared", "retry", "retry 2 of 3", "{}")
    store.finish_attempt(
        lease, position=1, kind=AttemptKind.STEP, attempt=1, result=failed, journal=None, now=at(2)
    )
    commit_first_step(store, lease, at(3), at(4), number=2)
    attempts = store.list_attempts(record.run_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [
        (1, AttemptOutcome.FAILED),
        (2, AttemptOutcome.SUCCEEDED),
    ]
    assert attempts[0].rule == "declared"
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    (entry,) = store.list_journal(record.run_id)
    assert (entry.position, entry.output, entry.committed_at) == (1, '"ok"', at(4))


def test_suspend_waiting_for_an_event_already_sent_is_claimable_at_once(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.send_event(
        record.run_id, "approved", '{"ok":true}', event_key=None, now=at(1), actor=ACTOR
    )
    store.suspend(
        lease,
        Suspension(RunStatus.WAITING, "event:approved", wake_at=None, waiting_for="approved"),
        at(2),
    )
    run = store.get_run(record.run_id)
    assert run is not None
    assert (run.status, run.wake_at, run.lease_owner) == (RunStatus.WAITING, at(2), None)
    again = claim_one(store, "w1", at(2))
    event = store.consume_event(again.lease, position=1, name="approved", now=at(2))
    assert event is not None
    assert event.payload == '{"ok":true}'


def test_suspend_waiting_for_an_event_not_yet_sent_wakes_when_it_arrives(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.suspend(lease, Suspension(RunStatus.WAITING, "event:go", waiting_for="go"), at(1))
    claim_none(store, "w1", at(1000))
    store.send_event(record.run_id, "unrelated", None, event_key=None, now=at(2), actor=ACTOR)
    claim_none(store, "w1", at(1000))
    store.send_event(record.run_id, "go", '"now"', event_key=None, now=at(3), actor=ACTOR)
    assert claim_one(store, "w1", at(3)).run.run_id == record.run_id


def test_sleeping_run_is_claimable_only_from_its_wake_time(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.suspend(lease, Suspension(RunStatus.WAITING, "sleep", wake_at=at(30)), at(1))
    claim_none(store, "w1", at(29.999))
    assert claim_one(store, "w1", at(30)).run.run_id == record.run_id


def test_next_due_is_the_soonest_wake_or_lease_expiry_of_the_workflows_asked_for(store):
    assert store.next_due("w2", workflows=["flow"], now=T0) is None
    store.create_run(new_run(), T0, ACTOR)
    store.create_run(new_run(), T0, ACTOR)
    store.create_run(new_run("other"), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease  # the sleeper's
    store.suspend(lease, Suspension(RunStatus.WAITING, "sleep", wake_at=at(30)), at(1))
    held = claim_one(store, "w1", at(2)).run  # leased by w1 until 2 + LEASE_S
    claim_one(store, "w1", at(2), workflows=["other"])  # the same, of another workflow
    assert held.lease_expires_at == at(2 + LEASE_S)

    def due(worker: str, now: float, workflows: tuple[str, ...] = ("flow",)) -> object:
        return store.next_due(worker, workflows=list(workflows), now=at(now))

    assert due("w2", 3) == at(2 + LEASE_S)
    assert due("w2", 3, ("other",)) == at(2 + LEASE_S)
    # Only what falls due after ``now``: a moment already passed was for the claim.
    assert due("w2", 2 + LEASE_S) == at(30)
    assert due("w2", 30) is None
    # A worker's own leases are renewed by its heartbeats: not due for it.
    assert due("w1", 3) == at(30)
    assert due("w2", 3, ("missing",)) is None
    assert due("w2", 3, ()) is None


def test_events_are_consumed_once_in_the_order_sent(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    for n in (1, 2):
        store.send_event(record.run_id, "line", str(n), event_key=None, now=at(n), actor=ACTOR)
    lease = claim_one(store, "w1", at(3)).lease
    first = store.consume_event(lease, position=1, name="line", now=at(4))
    second = store.consume_event(lease, position=2, name="line", now=at(4))
    assert (first.payload, second.payload) == ("1", "2")
    assert store.consume_event(lease, position=3, name="line", now=at(4)) is None
    assert [e.output for e in store.list_journal(record.run_id)] == ["1", "2"]


def test_repeated_event_key_returns_the_first_event(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    first = store.send_event(record.run_id, "paid", "1", event_key="e1", now=at(1), actor=ACTOR)
    head = store.audit_head()
    again = store.send_event(record.run_id, "paid", "2", event_key="e1", now=at(2), actor=ACTOR)
    assert again == first
    assert store.audit_head() == head


def test_event_for_a_finished_or_unknown_run_is_refused(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, output="null"), at(1))
    before = state(store, record.run_id)
    with pytest.raises(RunAlreadyFinishedError):
        store.send_event(record.run_id, "go", None, event_key=None, now=at(2), actor=ACTOR)
    with pytest.raises(RunNotFoundError):
        store.send_event("nope", "go", None, event_key=None, now=at(2), actor=ACTOR)
    assert state(store, record.run_id) == before


# -- the last step's end, committed with the run's end -------------------------------------------


@pytest.mark.parametrize("written", [False, True], ids=["start-unwritten", "start-written"])
def test_finish_run_commits_the_last_steps_end_first_in_the_same_transaction(store, written):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    if written:
        store.begin_attempt(lease, attempt(lease, at(10.5), position=2))
    store.finish_run(
        lease,
        RunEnd(RunStatus.SUCCEEDED, output='"done"', steps=(_last_step(lease, written=written),)),
        at(11),
    )

    run = store.get_run(record.run_id)
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    (step,) = store.list_attempts(record.run_id)
    assert (step.position, step.attempt, step.outcome) == (2, 1, AttemptOutcome.SUCCEEDED)
    assert (step.started_at, step.finished_at) == (at(10.5), at(10.8))
    (entry,) = store.list_journal(record.run_id)
    assert (entry.position, entry.output) == (2, committed_step(record.run_id, at(0)).output)
    actions = [
        e.action
        for e in store.audit_entries(after_seq=0, limit=100)
        if e.entity_id in (record.run_id, f"{record.run_id}/2/1")
    ]
    # The step's start, its end, then the run's end: in the order they happened.
    assert actions[-3:] == ["attempt.started", "attempt.finished", "run.finished"]
    assert_chain_intact(store)


def test_commit_steps_commits_held_step_ends_in_order_in_one_transaction(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.begin_attempt(lease, attempt(lease, at(10.5), position=4))
    steps = [_last_step(lease, written=False, position=p) for p in (2, 3)]
    store.commit_steps(lease, [*steps, _last_step(lease, written=True, position=4)])

    attempts = store.list_attempts(record.run_id)
    assert [(a.position, a.outcome) for a in attempts] == [
        (p, AttemptOutcome.SUCCEEDED) for p in (2, 3, 4)
    ]
    assert [e.position for e in store.list_journal(record.run_id)] == [2, 3, 4]
    entries = [
        (e.action, e.entity_id)
        for e in store.audit_entries(after_seq=0, limit=100)
        if e.entity_id.startswith(f"{record.run_id}/")
    ]
    # Each step's start and end, in the order the steps ran; the written start first of all.
    assert entries == [
        ("attempt.started", f"{record.run_id}/4/1"),
        ("attempt.started", f"{record.run_id}/2/1"),
        ("attempt.finished", f"{record.run_id}/2/1"),
        ("attempt.started", f"{record.run_id}/3/1"),
        ("attempt.finished", f"{record.run_id}/3/1"),
        ("attempt.finished", f"{record.run_id}/4/1"),
    ]
    run = store.get_run(record.run_id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert_chain_intact(store)


def test_commit_steps_with_a_step_that_cannot_be_written_writes_none_of_them(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.begin_attempt(lease, attempt(lease, at(10.5), position=3))
    before = state(store, record.run_id)
    # Position 3's row exists: it cannot be inserted as a step whose start was not written.
    steps = [_last_step(lease, written=False, position=p) for p in (2, 3)]
    with pytest.raises(StoreError):
        store.commit_steps(lease, steps)
    assert state(store, record.run_id) == before
    assert_chain_intact(store)


def test_finish_run_commits_several_held_step_ends_before_the_end(store):
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    steps = tuple(_last_step(lease, written=False, position=p) for p in (1, 2, 3))
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, output='"done"', steps=steps), at(11))

    run = store.get_run(record.run_id)
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    assert [e.position for e in store.list_journal(record.run_id)] == [1, 2, 3]
    assert [a.outcome for a in store.list_attempts(record.run_id)] == [AttemptOutcome.SUCCEEDED] * 3
    actions = [
        e.action
        for e in store.audit_entries(after_seq=0, limit=100)
        if e.entity_id == record.run_id or e.entity_id.startswith(f"{record.run_id}/")
    ]
    assert actions[-7:] == [
        *["attempt.started", "attempt.finished"] * 3,
        "run.finished",
    ]
    assert_chain_intact(store)


def test_finish_run_whose_last_step_cannot_be_written_writes_nothing(store):
    """All or nothing: a step end that fails (its attempt row exists already, so it cannot
    be inserted as one whose start was not written) leaves the run running, untouched."""
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    store.begin_attempt(lease, attempt(lease, at(10.5), position=2))
    before = state(store, record.run_id)
    with pytest.raises(StoreError):
        store.finish_run(
            lease,
            RunEnd(RunStatus.SUCCEEDED, output='"done"', steps=(_last_step(lease, written=False),)),
            at(11),
        )
    assert state(store, record.run_id) == before
    assert_chain_intact(store)
