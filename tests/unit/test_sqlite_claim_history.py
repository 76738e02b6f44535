"""A SQLite claim reads the histories of the runs it takes only where they have one: the
lease statement says which do, so a new run's claim sends no reads of journal, attempts
or review items, and a run taken over or resumed still gets all of its history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from surefoot.store.base import ClaimedRun
from surefoot.store.sqlite import SQLiteStore, leases
from tests.contract.support import LEASE_S, T0, at, claim_one, commit_first_step, new_run

# The reads a history is made of (a takeover's reads of open attempts are not among them).
HISTORY_READS = tuple(
    f"SELECT * FROM {table} WHERE run_id IN (" for table in ("journal", "attempts", "review_items")
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'h.db'}")
    yield store
    store.close()


def traced_claim(store: SQLiteStore, sent: list[str], *, now: datetime) -> list[ClaimedRun]:
    """A claim of every claimable run, with the statements it sends kept in ``sent``."""

    def trace(cur: object) -> None:
        store._committer._conn.set_trace_callback(sent.append)  # type: ignore[union-attr]

    store._write(trace)  # opens the writing connection, then traces it
    try:
        return store.claim(
            "w2", workflows=["flow"], queues=None, limit=10, lease_s=LEASE_S, now=now
        )
    finally:
        store._committer._conn.set_trace_callback(None)  # type: ignore[union-attr]


def history_reads(sent: list[str]) -> list[str]:
    return [s for s in sent if s.startswith(HISTORY_READS)]


def test_a_new_runs_claim_reads_no_history(store: SQLiteStore):
    store.create_run(new_run(), T0, "tester")
    sent: list[str] = []
    (claimed,) = traced_claim(store, sent, now=T0)
    assert history_reads(sent) == []
    assert claimed.history.journal == {}
    assert claimed.history.attempts == {}


def runs_taken_over_with_a_new_one(store: SQLiteStore) -> tuple[dict[str, ClaimedRun], str]:
    """A run whose first step committed, its worker's lease then expired, claimed again
    together with a new run; the claims by run id, and the first run's id."""
    record, _ = store.create_run(new_run(), T0, "tester")
    lease = claim_one(store, "w1", T0).lease
    commit_first_step(store, lease, at(1), at(2))
    store.create_run(new_run(), at(3), "tester")
    sent: list[str] = []
    claimed = traced_claim(store, sent, now=at(LEASE_S + 5))
    assert len(history_reads(sent)) == 3  # for the run that has one, in one read per table
    return {c.run.run_id: c for c in claimed}, record.run_id


def test_a_run_with_a_history_gets_all_of_it_in_the_same_claim_as_a_new_one(
    store: SQLiteStore,
):
    claims, old = runs_taken_over_with_a_new_one(store)
    assert claims[old].taken_over
    assert list(claims[old].history.journal) == [1]
    assert [a.attempt for a in claims[old].history.attempts[1]] == [1]
    (new,) = (c for run_id, c in claims.items() if run_id != old)
    assert new.history.journal == {}
    assert new.history.attempts == {}


def test_negative_control_a_lease_that_says_no_run_has_a_history_is_caught(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(leases, "_LEASE", leases._LEASE.replace(leases.HAS_HISTORY, "0"))
    with pytest.raises(AssertionError):
        runs_taken_over_with_a_new_one(store)
