"""Many runs in one commit (``create_runs``): each run as ``create_run`` makes it, all of
them or none. Same behaviour on every store."""

from __future__ import annotations

import pytest

from surefoot.domain.queues import QueueSpec
from surefoot.domain.records import RunFilter
from surefoot.domain.status import RunStatus
from surefoot.errors import BackPressureError, IdempotencyKeyConflictError
from surefoot.store.base import Store
from tests.contract.support import ACTOR, assert_chain_intact, at, new_run


def test_a_batch_commits_every_run_in_order_with_its_audit_entry(store: Store):
    news = [new_run(inputs={"n": n}, partition_key=f"acct-{n % 2}") for n in range(5)]
    made = store.create_runs(news, at(0), ACTOR)
    assert [(record.run_id, created) for record, created in made] == [
        (new.run_id, True) for new in news
    ]
    for new, (record, _) in zip(news, made, strict=True):
        assert record.status is RunStatus.PENDING
        assert record.inputs == new.inputs
        assert record.partition_key == new.partition_key
        assert store.get_run(new.run_id) == record
    assert store.count_runs(RunFilter()) == 5
    created = [e for e in store.audit_entries(after_seq=0, limit=100) if e.action == "run.created"]
    assert [e.entity_id for e in created] == [new.run_id for new in news]
    assert_chain_intact(store)


def test_a_repeated_key_returns_the_run_made_for_its_first_use_in_or_before_the_batch(
    store: Store,
):
    before, _ = store.create_run(new_run(idempotency_key="old"), at(0), ACTOR)
    news = [
        new_run(idempotency_key="new"),
        new_run(idempotency_key="old"),
        new_run(idempotency_key="new"),
    ]
    made = store.create_runs(news, at(1), ACTOR)
    assert [created for _, created in made] == [True, False, False]
    assert made[0][0].run_id == news[0].run_id
    assert made[1][0].run_id == before.run_id
    assert made[2][0].run_id == news[0].run_id
    assert store.count_runs(RunFilter()) == 2


def test_a_key_reused_with_other_inputs_stores_none_of_the_batch(store: Store):
    store.create_run(new_run(idempotency_key="k", inputs={"n": 1}), at(0), ACTOR)
    entries = len(store.audit_entries(after_seq=0, limit=100))
    news = [new_run(inputs={"n": 2}), new_run(idempotency_key="k", inputs={"n": 3})]
    with pytest.raises(IdempotencyKeyConflictError):
        store.create_runs(news, at(1), ACTOR)
    assert store.count_runs(RunFilter()) == 1
    assert store.get_run(news[0].run_id) is None
    assert len(store.audit_entries(after_seq=0, limit=100)) == entries
    assert_chain_intact(store)
    store.create_runs([new_run()], at(2), ACTOR)  # the store takes the next batch
    assert store.count_runs(RunFilter()) == 2


def test_a_batch_that_would_pass_max_depth_stores_none_and_says_when_to_retry(store: Store):
    spec = QueueSpec("invoices", max_depth=3, retry_after_s=4.0)
    store.create_run(new_run(queue="invoices"), at(0), ACTOR, queue=spec)
    with pytest.raises(BackPressureError) as refused:
        store.create_runs(
            [new_run(queue="invoices") for _ in range(3)], at(1), ACTOR, queues={"invoices": spec}
        )
    assert refused.value.retry_after_s == 4.0
    assert refused.value.queue == "invoices"
    assert store.count_runs(RunFilter(queue="invoices")) == 1
    made = store.create_runs(
        [new_run(queue="invoices") for _ in range(2)], at(2), ACTOR, queues={"invoices": spec}
    )
    assert [created for _, created in made] == [True, True]
    assert store.count_runs(RunFilter(queue="invoices")) == 3


def test_an_empty_batch_commits_nothing(store: Store):
    assert store.create_runs([], at(0), ACTOR) == []
    assert store.count_runs(RunFilter()) == 0


def test_a_key_used_twice_in_a_batch_with_other_inputs_stores_none(store: Store):
    news = [
        new_run(idempotency_key="k", inputs={"n": 1}),
        new_run(idempotency_key="k", inputs={"n": 2}),
    ]
    with pytest.raises(IdempotencyKeyConflictError):
        store.create_runs(news, at(0), ACTOR)
    assert store.count_runs(RunFilter()) == 0


def test_a_batch_retried_into_a_full_queue_returns_its_runs_and_fills_it_no_further(
    store: Store,
):
    spec = QueueSpec("invoices", max_depth=2)
    news = [new_run(queue="invoices", idempotency_key=f"k-{n}") for n in range(2)]
    first = store.create_runs(news, at(0), ACTOR, queues={"invoices": spec})
    again = store.create_runs(
        [new_run(queue="invoices", idempotency_key=f"k-{n}") for n in range(2)],
        at(1),
        ACTOR,
        queues={"invoices": spec},
    )
    assert [r.run_id for r, _ in again] == [r.run_id for r, _ in first]
    assert [created for _, created in again] == [False, False]
    with pytest.raises(BackPressureError):
        store.create_runs([new_run(queue="invoices")], at(2), ACTOR, queues={"invoices": spec})
    assert store.count_runs(RunFilter(queue="invoices")) == 2
