"""Step ends left for the run's next write (StepCommit), committed several at a time.

A store sends several held step ends in fewer statements than one by one (their attempt
rows in one insert and their journal entries in one upsert); what it writes must be
exactly what committing them one by one writes: the same attempt rows, the same journal
entries, the same audit entries in the same order. The negative control is a store that
forgets the ends of attempts whose start was written already.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from surefoot.domain.records import Lease
from surefoot.domain.status import AttemptOutcome, RunStatus
from surefoot.store.base import RunEnd, StepCommit, Store
from tests.contract.support import (
    ACTOR,
    SUCCEEDED,
    T0,
    assert_chain_intact,
    at,
    attempt,
    claim_one,
    committed_step,
    new_run,
)

POSITIONS = (1, 2, 3, 4)
STARTS_WRITTEN = {2}  # this step's start was committed before it ran; the others' not

Commit = Callable[[Store, Lease, list[StepCommit]], None]


def _held_steps(store: Store, lease: Lease) -> list[StepCommit]:
    """Four successful step ends, as a worker holds them: step 2's start committed first
    (``begin_attempt``), the others' starts written with their ends."""
    steps = []
    for position in POSITIONS:
        started, ended = at(position), at(position + 0.5)
        begun = attempt(lease, started, position=position)
        if position in STARTS_WRITTEN:
            store.begin_attempt(lease, begun)
        steps.append(
            StepCommit(
                begun,
                start_written=position in STARTS_WRITTEN,
                result=SUCCEEDED,
                journal=committed_step(lease.run_id, ended, position=position),
                at=ended,
            )
        )
    return steps


def _with_the_end(store: Store, lease: Lease, steps: list[StepCommit]) -> None:
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, '"done"', steps=tuple(steps)), at(10))


def _before_the_end(store: Store, lease: Lease, steps: list[StepCommit]) -> None:
    store.commit_steps(lease, steps)
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, '"done"'), at(10))


def _one_by_one(store: Store, lease: Lease, steps: list[StepCommit]) -> None:
    for step in steps:
        store.commit_steps(lease, [step])
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, '"done"'), at(10))


def _run_committed(store: Store, commit: Commit) -> str:
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    commit(store, lease, _held_steps(store, lease))
    return record.run_id


def _written(store: Store, run_id: str) -> dict[str, list[str]]:
    """What the store shows of the run's steps, with the run's id left out (it is in
    idempotency keys and audit entities)."""
    audit = [
        (e.at, e.actor, e.action, e.entity_id, e.before, e.after)
        for e in store.audit_entries(after_seq=0, limit=10_000)
        if e.entity_id.startswith(run_id)
    ]
    shown: dict[str, Sequence[object]] = {
        "attempts": store.list_attempts(run_id),
        "journal": store.list_journal(run_id),
        "audit": audit,
    }
    return {name: [repr(row).replace(run_id, "-") for row in rows] for name, rows in shown.items()}


def _assert_same_as_one_by_one(store: Store, commit: Commit) -> None:
    run_id = _run_committed(store, commit)
    assert [(a.position, a.outcome, a.finished_at) for a in store.list_attempts(run_id)] == [
        (p, AttemptOutcome.SUCCEEDED, at(p + 0.5)) for p in POSITIONS
    ]
    assert [(e.position, e.committed_at) for e in store.list_journal(run_id)] == [
        (p, at(p + 0.5)) for p in POSITIONS
    ]
    assert _written(store, run_id) == _written(store, _run_committed(store, _one_by_one))
    assert_chain_intact(store)


@pytest.mark.parametrize("commit", [_with_the_end, _before_the_end], ids=["finish", "commit"])
def test_step_ends_committed_together_write_what_one_by_one_writes(
    store: Store, commit: Commit
) -> None:
    _assert_same_as_one_by_one(store, commit)


def test_step_ends_that_repeat_a_journal_position_are_committed_in_order(store: Store) -> None:
    """Two ends for one position (the later wins in the journal, as one by one)."""
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    first, second = (
        StepCommit(
            attempt(lease, at(n), position=1, number=n),
            start_written=False,
            result=SUCCEEDED,
            journal=replace(committed_step(lease.run_id, at(n + 0.5)), output=f'"{n}"'),
            at=at(n + 0.5),
        )
        for n in (1, 2)
    )
    store.commit_steps(lease, [first, second])
    assert [a.attempt for a in store.list_attempts(record.run_id)] == [1, 2]
    assert [e.output for e in store.list_journal(record.run_id)] == ['"2"']


def test_negative_control_a_store_that_forgets_ends_of_written_starts_is_caught(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = type(store)._commit_steps_txn  # type: ignore[attr-defined]  # both stores have it

    def forgetful(
        self: Any, cur: Any, lease: Lease, steps: Sequence[StepCommit], cid: str | None
    ) -> None:
        kept(self, cur, lease, [step for step in steps if not step.start_written], cid)

    monkeypatch.setattr(type(store), "_commit_steps_txn", forgetful)
    with pytest.raises(AssertionError):
        _assert_same_as_one_by_one(store, _with_the_end)


def test_step_ends_committed_together_keep_their_text_exactly(store: Store) -> None:
    """Inputs and outputs travel inside another encoding when sent together (PostgreSQL:
    a JSON array); what is stored is the very text given."""
    texts = [
        '{"note":"caf\\u00e9 \\"quoted\\" back\\\\slash"}',
        '"tab\\tnew\\nline \\u0000 nul, emoji \U0001f4a5, e\u0301"',
        "[1e400, -0.0, 12345678901234567890]",
    ]
    record, _ = store.create_run(new_run(), T0, ACTOR)
    lease = claim_one(store, "w1", T0).lease
    steps = [
        StepCommit(
            replace(attempt(lease, at(p), position=p), inputs=text),
            start_written=False,
            result=SUCCEEDED,
            journal=replace(committed_step(lease.run_id, at(p + 0.5), position=p), output=text),
            at=at(p + 0.5),
        )
        for p, text in enumerate(texts, start=1)
    ]
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, '"done"', steps=tuple(steps)), at(10))
    assert [a.inputs for a in store.list_attempts(record.run_id)] == texts
    assert [e.output for e in store.list_journal(record.run_id)] == texts
