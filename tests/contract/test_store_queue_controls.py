"""Queue controls in the store: bounded intake, debounce, per-queue caps and global
concurrency at claim time, shared token buckets. Same behaviour on every store."""

from __future__ import annotations

import dataclasses

import pytest

from surefoot.domain.queues import QueueSpec, RateLimit
from surefoot.domain.records import RunFilter
from surefoot.domain.status import RunStatus
from surefoot.errors import BackPressureError
from surefoot.store.base import Store
from tests.contract.support import ACTOR, LEASE_S, at, new_run


def claim(store: Store, worker: str, seconds: float, **options: object) -> list[str]:
    claimed = store.claim(
        worker,
        workflows=["flow"],
        queues=None,
        limit=int(options.pop("limit", 10)),  # type: ignore[call-overload]
        lease_s=LEASE_S,
        now=at(seconds),
        **options,  # type: ignore[arg-type]
    )
    return [c.run.run_id for c in claimed]


def test_a_full_queue_refuses_a_start_with_retry_after_and_stores_nothing(store: Store):
    spec = QueueSpec("invoices", max_depth=2, retry_after_s=7.5)
    for _ in range(2):
        store.create_run(new_run(queue="invoices"), at(0), ACTOR, queue=spec)
    with pytest.raises(BackPressureError) as refused:
        store.create_run(new_run(queue="invoices"), at(1), ACTOR, queue=spec)
    assert refused.value.retry_after_s == 7.5
    assert refused.value.queue == "invoices"
    assert store.count_runs(RunFilter(queue="invoices")) == 2


def test_a_full_queue_still_returns_the_existing_run_for_a_repeated_idempotency_key(
    store: Store,
):
    spec = QueueSpec("invoices", max_depth=1)
    first, created = store.create_run(
        new_run(queue="invoices", idempotency_key="k"), at(0), ACTOR, queue=spec
    )
    again, created_again = store.create_run(
        new_run(queue="invoices", idempotency_key="k"), at(1), ACTOR, queue=spec
    )
    assert created
    assert not created_again
    assert again.run_id == first.run_id


def test_claimed_runs_leave_room_in_a_bounded_queue(store: Store):
    spec = QueueSpec("invoices", max_depth=1)
    store.create_run(new_run(queue="invoices"), at(0), ACTOR, queue=spec)
    assert len(claim(store, "w1", 1)) == 1
    store.create_run(new_run(queue="invoices"), at(2), ACTOR, queue=spec)  # no error


def test_debounced_starts_within_the_window_become_one_run_with_the_last_inputs(
    store: Store,
):
    first = dataclasses.replace(new_run(inputs={"n": 1}), debounce_key="acct-1", not_before=at(10))
    second = dataclasses.replace(new_run(inputs={"n": 2}), debounce_key="acct-1", not_before=at(15))
    run, created = store.create_run(first, at(0), ACTOR)
    again, created_again = store.create_run(second, at(5), ACTOR)
    assert created
    assert not created_again
    assert again.run_id == run.run_id
    assert again.inputs == second.inputs
    assert again.status is RunStatus.WAITING
    assert again.wake_at == at(15)
    assert claim(store, "w1", 14) == []
    assert claim(store, "w1", 15) == [run.run_id]
    later = dataclasses.replace(new_run(inputs={"n": 3}), debounce_key="acct-1", not_before=at(30))
    third, created_third = store.create_run(later, at(20), ACTOR)
    assert created_third
    assert third.run_id != run.run_id


def test_global_concurrency_caps_running_runs_of_a_queue_across_workers(store: Store):
    for _ in range(4):
        store.create_run(new_run(queue="erp"), at(0), ACTOR)
    store.create_run(new_run(queue="other"), at(0), ACTOR)
    limits = {"erp": 2}
    first = claim(store, "w1", 1, limit=1, global_concurrency=limits)
    second = claim(store, "w2", 1, limit=10, global_concurrency=limits)
    third = claim(store, "w3", 1, limit=10, global_concurrency=limits)
    queues = [store.get_run(r).queue for r in first + second + third]  # type: ignore[union-attr]
    assert queues.count("erp") == 2
    assert queues.count("other") == 1
    assert third == []


def test_a_full_capped_queue_does_not_crowd_other_queues_out_of_a_claim(store: Store):
    for _ in range(5):
        store.create_run(new_run(queue="erp", priority=9), at(0), ACTOR)
    store.create_run(new_run(queue="other"), at(1), ACTOR)
    claimed = claim(store, "w1", 2, limit=2, caps={"erp": 1})
    queues = sorted(store.get_run(r).queue for r in claimed)  # type: ignore[union-attr]
    assert queues == ["erp", "other"]


def test_a_worker_cap_of_zero_takes_nothing_from_that_queue(store: Store):
    store.create_run(new_run(queue="erp"), at(0), ACTOR)
    assert claim(store, "w1", 1, caps={"erp": 0}) == []


def test_a_token_bucket_grants_its_burst_then_paces_at_its_rate(store: Store):
    limit = RateLimit("xero", per_s=2.0, burst=3)
    waits = [store.take_token(limit, at(0)) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.5)
    assert store.take_token(limit, at(0.5)) == 0.0
    assert store.take_token(limit, at(0.5)) == pytest.approx(0.5)


def test_token_buckets_are_independent_per_key(store: Store):
    one, other = RateLimit("a", per_s=1.0), RateLimit("b", per_s=1.0)
    assert store.take_token(one, at(0)) == 0.0
    assert store.take_token(one, at(0)) > 0.0
    assert store.take_token(other, at(0)) == 0.0


def test_a_take_with_an_older_clock_reading_never_refills_twice(store: Store):
    """A worker whose clock reading predates the last take (it waited for the lock) must
    not move the bucket's time back: the next take would refill that span again."""
    limit = RateLimit("late", per_s=1.0, burst=1)
    assert store.take_token(limit, at(10)) == 0.0
    assert store.take_token(limit, at(9)) == pytest.approx(1.0)  # stale reading: no refill
    assert store.take_token(limit, at(10.5)) == pytest.approx(0.5)
