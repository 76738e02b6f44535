"""Lease checks sent with the writes they guard (PostgreSQL, ``store/postgres/fences.py``).

An attempt's start or end checks its lease in the round trip that sends its writes,
not in one of its own. These tests hold that to what a check made first promised: in a
batch of the group committer, a write whose lease was taken over is refused alone
(whether it is first, in the middle or last) and writes nothing, while the others of
its batch commit; a refused lease is the error even when a write after the check fails
too; and the committed writes are the checked ones only, with the audit chain intact.

Such writes read nothing, so in a batch the checks and writes of consecutive ones go
to the server together, in one round trip; when that send fails, the batch is run again
with each write's sent on its own, so the failure is still the failing write's alone,
whether a lease was refused or a statement failed on the server.

The negative controls break the mechanism on purpose: checks that always pass, a
committer that does not send the last write's check before ``COMMIT``, and one that
blames the last write of a shared send for its failure. The same assertions must fail
against each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import psycopg
import pytest

from surefoot.domain.records import Lease
from surefoot.domain.status import AttemptOutcome, RunStatus
from surefoot.errors import LeaseLostError, StoreError
from surefoot.store.base import RunEnd
from surefoot.store.postgres import PostgresStore, fences
from surefoot.store.postgres.base import Cursor
from surefoot.store.postgres.group_commit import Again, Work
from tests import postgres_support
from tests.contract.support import (
    ACTOR,
    LEASE_S,
    T0,
    assert_chain_intact,
    at,
    attempt,
    claim_one,
    new_run,
)
from tests.integration.support.batches import calls_in_one_batch

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


def three_runs_one_taken_over(store: PostgresStore, stale_index: int) -> list[Lease]:
    """Three runs leased to w1; the one at ``stale_index`` then taken over by w2, so that
    w1's lease of it is stale. Returns w1's three leases, in order, then w2's."""
    leases = []
    for _ in range(3):
        store.create_run(new_run(), T0, ACTOR)
        leases.append(claim_one(store, "w1", T0).lease)
    kept = [lease for n, lease in enumerate(leases) if n != stale_index]
    assert store.heartbeat("w1", kept, LEASE_S, at(LEASE_S - 1)) == (set(), set())
    taken = claim_one(store, "w2", at(LEASE_S))
    assert taken.lease.run_id == leases[stale_index].run_id
    return [*leases, taken.lease]


def batch_with_one_stale_start(store: PostgresStore, stale_index: int) -> list[str]:
    """Three attempt starts in one batch, one of them under a stale lease; what is wrong
    with the outcome (nothing, when checks hold)."""
    leases = three_runs_one_taken_over(store, stale_index)[:3]
    outcomes = calls_in_one_batch(
        store,
        [partial(store.begin_attempt, lease, attempt(lease, at(LEASE_S + 1))) for lease in leases],
    )
    problems = []
    for n, (lease, (kind, value)) in enumerate(zip(leases, outcomes, strict=True)):
        started = store.list_attempts(lease.run_id)
        if n == stale_index:
            if kind != "error" or not isinstance(value, LeaseLostError):
                problems.append(f"stale write {n}: {kind} {value!r}, expected LeaseLostError")
            if started:
                problems.append(f"stale write {n} left {len(started)} attempt(s)")
        else:
            if kind != "ok":
                problems.append(f"write {n} of its batch failed: {value!r}")
            if [a.outcome for a in started] != [AttemptOutcome.RUNNING]:
                problems.append(f"write {n} left attempts {[a.outcome for a in started]}")
    return problems


@pytest.mark.parametrize("stale_index", [0, 1, 2])
def test_a_stale_lease_in_a_batch_is_refused_alone(store: PostgresStore, stale_index: int):
    assert batch_with_one_stale_start(store, stale_index) == []
    assert_chain_intact(store)


def test_a_lone_stale_write_is_refused_before_its_commit(store: PostgresStore):
    stale = three_runs_one_taken_over(store, 1)[1]
    with pytest.raises(LeaseLostError, match="nothing was written"):
        store.begin_attempt(stale, attempt(stale, at(LEASE_S + 1)))
    assert store.list_attempts(stale.run_id) == []
    assert_chain_intact(store)


def test_a_refused_lease_is_the_error_when_a_write_after_the_check_fails_too(
    store: PostgresStore,
):
    *_, stale, _, fresh = three_runs_one_taken_over(store, 1)
    # The new holder starts attempt 1; the same attempt under the stale lease would fail
    # its insert (it exists) after its check refused: the refusal is what is reported.
    store.begin_attempt(fresh, attempt(fresh, at(LEASE_S + 1)))
    with pytest.raises(LeaseLostError, match="nothing was written"):
        store.begin_attempt(stale, attempt(stale, at(LEASE_S + 2)))
    # And with the lease held, the failing insert is the error.
    with pytest.raises(StoreError) as duplicate:
        store.begin_attempt(fresh, attempt(fresh, at(LEASE_S + 3)))
    assert not isinstance(duplicate.value, LeaseLostError)
    assert [a.worker_id for a in store.list_attempts(stale.run_id)] == ["w2"]
    assert_chain_intact(store)


def test_checks_that_always_pass_are_caught(store: PostgresStore, monkeypatch: pytest.MonkeyPatch):
    # Negative control: the stale write commits, and the check above reports it.
    monkeypatch.setattr(fences, "holds", lambda _row, _lease: True)
    problems = batch_with_one_stale_start(store, 1)
    assert any(p.startswith("stale write 1") for p in problems), problems


def test_a_committer_that_leaves_the_last_check_for_commit_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the last write's check answered with COMMIT fails its whole batch.
    monkeypatch.setattr(store._committer, "_must_settle", lambda _cur, _shared: False)
    problems = batch_with_one_stale_start(store, 2)
    assert any("of its batch failed" in p for p in problems), problems


def batch_with_one_stale_end(store: PostgresStore, stale_index: int) -> list[str]:
    """Three run ends in one batch, one of them under a stale lease; what is wrong with
    the outcome (nothing, when checks hold)."""
    leases = three_runs_one_taken_over(store, stale_index)[:3]
    end = RunEnd(RunStatus.SUCCEEDED, output='"done"')
    outcomes = calls_in_one_batch(
        store, [partial(store.finish_run, lease, end, at(LEASE_S + 1)) for lease in leases]
    )
    problems = []
    for n, (lease, (kind, value)) in enumerate(zip(leases, outcomes, strict=True)):
        run = store.get_run(lease.run_id)
        assert run is not None
        if n == stale_index:
            if kind != "error" or not isinstance(value, LeaseLostError):
                problems.append(f"stale end {n}: {kind} {value!r}, expected LeaseLostError")
            if run.status is not RunStatus.RUNNING or run.lease_owner != "w2":
                problems.append(f"stale end {n} left the run {run.status} ({run.lease_owner})")
        elif kind != "ok" or run.status is not RunStatus.SUCCEEDED:
            problems.append(f"end {n} of its batch: {kind} {value!r}, run {run.status}")
    return problems


@pytest.mark.parametrize("stale_index", [0, 2])
def test_a_run_end_under_a_stale_lease_in_a_batch_is_refused_alone(
    store: PostgresStore, stale_index: int
):
    assert batch_with_one_stale_end(store, stale_index) == []
    assert_chain_intact(store)


def end_of_a_run_whose_status_changed(store: PostgresStore, postgres_url: str) -> str:
    """A run's end after its status changed behind its worker (which no write of this
    code does): the status its audit entry gives as the one before the end."""
    store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease  # the worker last knew it running
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute("UPDATE runs SET status = 'compensating' WHERE run_id = %s", (lease.run_id,))
    store.finish_run(lease, RunEnd(RunStatus.FAILED, error="{}"), at(1))
    entries = store.audit_entries(after_seq=0, limit=1_000, entity_id=lease.run_id)
    finished = [entry for entry in entries if entry.action == "run.finished"]
    assert len(finished) == 1
    before = finished[0].before
    return str((json.loads(before) if isinstance(before, str) else before)["status"])


def test_a_run_end_records_the_status_the_run_was_in(store: PostgresStore, postgres_url: str):
    assert end_of_a_run_whose_status_changed(store, postgres_url) == "compensating"
    assert_chain_intact(store)


def test_a_check_blind_to_the_status_is_caught(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: a check that takes any status for the expected one lets the end
    # record the status its worker last knew, which the same reading catches.
    monkeypatch.setattr(fences, "in_status", lambda _row, _status: True)
    assert end_of_a_run_whose_status_changed(store, postgres_url) == "running"


def test_run_end_checks_that_always_pass_are_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the stale end commits over the new holder's lease.
    monkeypatch.setattr(fences, "holds", lambda _row, _lease: True)
    problems = batch_with_one_stale_end(store, 0)
    assert any(p.startswith("stale end 0") for p in problems), problems


@pytest.mark.parametrize("shared", [True, False], ids=["as-written", "negative-control"])
def test_the_writes_of_a_batch_of_run_ends_go_to_the_server_in_one_send(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, shared: bool
):
    if not shared:  # each write's statements sent on their own, as before a shared send
        real_run_items = store._committer.run_items

        def one_by_one(cursor: Cursor, batch: Any, **_: Any) -> Any:
            return real_run_items(cursor, batch, one_by_one=True)

        monkeypatch.setattr(store._committer, "run_items", one_by_one)
    leases = three_runs_one_taken_over(store, 0)[1:3]
    for _ in range(2):
        store.create_run(new_run(), T0, ACTOR)
        leases.append(claim_one(store, "w1", at(LEASE_S)).lease)
    sends: list[int] = []
    real_send = fences.send

    def counting(cur: Any, statements: Any, checks: Any) -> str | None:
        sends.append(len(checks))
        return real_send(cur, statements, checks)

    monkeypatch.setattr(fences, "send", counting)
    end = RunEnd(RunStatus.SUCCEEDED, output='"done"')

    outcomes = calls_in_one_batch(
        store, [partial(store.finish_run, lease, end, at(LEASE_S + 1)) for lease in leases]
    )

    assert [kind for kind, _ in outcomes] == ["ok"] * 4
    if shared:
        assert sends == [4], "the four checked ends were not sent together"
    else:
        assert sends == [1, 1, 1, 1]
    assert_chain_intact(store)


def blaming_the_last(
    store: PostgresStore,
) -> Callable[[Cursor, list[Work[Cursor, Any]]], Work[Cursor, Any] | Again | None]:
    """Deliberately broken: a failed send of several writes' statements is blamed on the
    last of them instead of finding the one at fault."""
    real_send = store._committer._send

    def send(cursor: Cursor, unsent: list[Work[Cursor, Any]]) -> Work[Cursor, Any] | Again | None:
        failed = real_send(cursor, list(unsent))
        if failed is Again.ONE_BY_ONE:
            unsent[-1].failed = True
            unsent[-1].error = LeaseLostError("blamed")
            return unsent[-1]
        if failed is None:
            unsent.clear()
        return failed

    return send


@pytest.mark.parametrize("stale_index", [0, 1])
def test_a_committer_that_blames_the_last_write_of_a_shared_send_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, stale_index: int
):
    # Negative control: the stale write's refusal lands on the last write of its batch.
    monkeypatch.setattr(store._committer, "_send", blaming_the_last(store))
    problems = batch_with_one_stale_start(store, stale_index)
    assert any("write 2 of its batch failed" in p for p in problems), problems


def test_a_run_end_whose_status_changed_is_made_again_in_a_batch_without_harm(
    store: PostgresStore, postgres_url: str
):
    leases = []
    for _ in range(3):
        store.create_run(new_run(), T0, ACTOR)
        leases.append(claim_one(store, "w1", T0).lease)
    changed = leases[1].run_id
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute("UPDATE runs SET status = 'compensating' WHERE run_id = %s", (changed,))
    end = RunEnd(RunStatus.FAILED, error="{}")

    outcomes = calls_in_one_batch(
        store, [partial(store.finish_run, lease, end, at(1)) for lease in leases]
    )

    assert [kind for kind, _ in outcomes] == ["ok"] * 3
    for lease in leases:
        run = store.get_run(lease.run_id)
        assert run is not None
        assert run.status is RunStatus.FAILED
        finished = [
            entry
            for entry in store.audit_entries(after_seq=0, limit=1_000, entity_id=lease.run_id)
            if entry.action == "run.finished"
        ]
        assert len(finished) == 1
        before = finished[0].before
        status = (json.loads(before) if isinstance(before, str) else before)["status"]
        assert status == ("compensating" if lease.run_id == changed else "running")
    assert_chain_intact(store)


def batch_with_one_failing_insert(store: PostgresStore) -> list[str]:
    """Three attempt starts in one batch, under held leases; the middle one's attempt
    already exists, so its insert fails on the server. What is wrong with the outcome."""
    leases = []
    for _ in range(3):
        store.create_run(new_run(), T0, ACTOR)
        leases.append(claim_one(store, "w1", T0).lease)
    store.begin_attempt(leases[1], attempt(leases[1], at(1)))  # the attempt the next clashes with
    outcomes = calls_in_one_batch(
        store, [partial(store.begin_attempt, lease, attempt(lease, at(2))) for lease in leases]
    )
    problems = []
    for n, (lease, (kind, value)) in enumerate(zip(leases, outcomes, strict=True)):
        started = store.list_attempts(lease.run_id)
        if n == 1:
            if kind != "error" or not isinstance(value.__cause__, psycopg.errors.UniqueViolation):
                problems.append(f"clashing write {n}: {kind} {value!r}, expected UniqueViolation")
            if [a.started_at for a in started] != [at(1)]:
                problems.append(f"clashing write {n} changed the attempts: {started}")
        elif kind != "ok" or [a.started_at for a in started] != [at(2)]:
            problems.append(f"write {n} of its batch: {kind} {value!r}, attempts {started}")
    return problems


def test_a_write_that_fails_on_the_server_in_a_shared_send_fails_alone(store: PostgresStore):
    assert batch_with_one_failing_insert(store) == []
    assert_chain_intact(store)


def test_a_committer_that_blames_the_last_write_for_a_failing_insert_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the middle write's failed insert lands on the last write.
    monkeypatch.setattr(store._committer, "_send", blaming_the_last(store))
    problems = batch_with_one_failing_insert(store)
    assert any("write 2 of its batch" in p for p in problems), problems
