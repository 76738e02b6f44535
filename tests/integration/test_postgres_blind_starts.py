"""Starts that read nothing first (PostgreSQL, ``store/postgres/intake.py``).

A start with no idempotency key, no debounce key and no bounded queue defers its insert to
the round trip of its ``COMMIT`` and reads no transaction id. These tests hold it to what
a start that inserted first promised:

* a ``COMMIT`` whose answer was lost is looked up by the new run's id, so the start is
  applied exactly once whether the transaction committed or not (negative control: a
  look-up that takes every lost answer for a rollback inserts the run again, and the
  primary key refuses it);
* the look-up waits for the transaction it asks about when that is still running, and
  tells its outcome once it ends (negative control: a look-up that reads instead of
  inserting sees nothing while the insert is uncommitted, and calls it not created);
* an insert that fails on the server fails its own start alone, also when it is the last
  of a batch with no lease check to send first (negative control: a committer that sends
  the last start's insert with ``COMMIT`` fails the whole batch);
* such a start sends no ``BEGIN`` and no ``COMMIT``: its statements are one implicit
  transaction, ended by the sync of their pipeline, so a start whose audit entry fails
  leaves no run behind (negative control: a pipeline synced after every statement, each
  then a transaction of its own, commits the run without its entry);
* its insert, audit entries and wake-up go as one statement (``store/postgres/merged.py``),
  and a part of it that fails on the server fails the whole start (negative control: a
  merge that keeps only the run's insert commits the run without its entries).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import psycopg
import pytest

from surefoot.domain.records import RunFilter
from surefoot.errors import StoreError
from surefoot.store.postgres import PostgresStore, audit, base, connection, intake, merged
from tests import postgres_support
from tests.contract.support import (
    ACTOR,
    T0,
    assert_chain_intact,
    at,
    new_run,
)
from tests.integration.support.batches import calls_in_one_batch
from tests.integration.support.lost_commit import lose_next_commit_answer

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


def created_entries(store: PostgresStore, run_id: str) -> int:
    entries = store.audit_entries(after_seq=0, limit=1_000, entity_id=run_id)
    return sum(entry.action == "run.created" for entry in entries)


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "rolled-back"])
@pytest.mark.parametrize("starts", [1, 3])
def test_a_start_whose_commit_answer_is_lost_is_applied_exactly_once(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, committed: bool, starts: int
):
    news = [new_run() for _ in range(starts)]
    lost = lose_next_commit_answer(monkeypatch, committed=committed)
    returned = store.create_runs(news, T0, ACTOR)
    monkeypatch.undo()

    assert lost == [True]
    for new, (record, created) in zip(news, returned, strict=True):
        assert created
        assert store.get_run(new.run_id) == record
        assert created_entries(store, new.run_id) == 1
    assert_chain_intact(store)


def test_a_look_up_that_takes_a_lost_answer_for_a_rollback_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the committed start is made again, and its insert is refused.
    monkeypatch.setattr(base.PostgresBase, "_created", lambda *_args: False)
    lose_next_commit_answer(monkeypatch, committed=True)
    new = new_run()
    with pytest.raises(StoreError) as refused:
        store.create_run(new, T0, ACTOR)
    assert isinstance(refused.value.__cause__, psycopg.errors.UniqueViolation)


def outcome_while_inserting(store: PostgresStore, url: str, *, commit: bool) -> list[Any]:
    """Insert a run on a connection of its own and keep its transaction open while the
    store's look-up asks whether it committed; then commit it (or roll it back). What the
    look-up answered, and whether it had answered before the transaction ended."""
    new = new_run()
    answers: list[Any] = []
    with psycopg.connect(url) as conn:
        conn.execute(intake._INSERT_RUN, intake._insert_params(new, T0))

        def look_up() -> None:
            answers.append(store._created(new.run_id, time.monotonic() + 30))

        asking = threading.Thread(target=look_up)
        asking.start()
        asking.join(0.5)
        answers.insert(0, "answered early" if answers else "waited")
        if commit:
            conn.commit()
        else:
            conn.rollback()
        asking.join(30)
    return answers


@pytest.mark.parametrize("commit", [True, False], ids=["committed", "rolled-back"])
def test_the_look_up_waits_for_a_start_still_running_and_tells_its_outcome(
    store: PostgresStore, postgres_url: str, commit: bool
):
    assert outcome_while_inserting(store, postgres_url, commit=commit) == ["waited", commit]
    if commit:
        return
    # The look-up's own insert was rolled back: nothing of it stays.
    assert store.list_runs(RunFilter()) == []


def test_a_look_up_that_reads_instead_of_inserting_is_caught(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: a read does not wait for the uncommitted insert, and misses it.
    monkeypatch.setattr(
        base,
        "_PROBE",
        "SELECT 1 AS absent WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = %s)",
    )
    answers = outcome_while_inserting(store, postgres_url, commit=True)
    assert answers != ["waited", True]
    assert answers == ["answered early", False]


def batch_with_one_failing_start(store: PostgresStore, failing_index: int) -> list[str]:
    """Three starts in one batch (no lease checks among them); the one at
    ``failing_index`` reuses a run id already taken, so its insert fails on the server.
    What is wrong with the outcome (nothing, when failures stay their own)."""
    taken = new_run()
    store.create_run(taken, T0, ACTOR)
    news = [new_run() for _ in range(3)]
    news[failing_index] = taken
    outcomes = calls_in_one_batch(
        store, [partial(store.create_run, new, at(1), ACTOR) for new in news]
    )
    problems = []
    for n, (new, (kind, value)) in enumerate(zip(news, outcomes, strict=True)):
        if n == failing_index:
            if kind != "error" or not isinstance(value.__cause__, psycopg.errors.UniqueViolation):
                problems.append(f"clashing start {n}: {kind} {value!r}, expected UniqueViolation")
        elif kind != "ok" or store.get_run(new.run_id) is None:
            problems.append(f"start {n} of its batch: {kind} {value!r}")
    stored = store.get_run(taken.run_id)
    if stored is None or stored.created_at != T0 or created_entries(store, taken.run_id) != 1:
        problems.append(f"the run whose id was reused changed: {stored}")
    return problems


@pytest.mark.parametrize("failing_index", [1, 2], ids=["middle", "last"])
def test_a_start_whose_insert_fails_in_a_batch_fails_alone(
    store: PostgresStore, failing_index: int
):
    assert batch_with_one_failing_start(store, failing_index) == []
    assert_chain_intact(store)


def test_a_committer_that_sends_the_last_start_with_commit_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the last start's failing insert, sent with COMMIT, fails them all.
    monkeypatch.setattr(store._committer, "_must_settle", lambda cur, _shared: False)
    problems = batch_with_one_failing_start(store, 2)
    assert any("start 0 of its batch" in p for p in problems), problems


def start_whose_audit_entry_fails(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> str:
    """A start whose audit append fails on the server (division by zero); its run's id."""

    def failing(_queued: object) -> tuple[str, list[Any]]:
        return "SELECT 1 / (%s::int - 1)", [1]

    monkeypatch.setattr(base.PostgresBase, "_append_statement", staticmethod(failing))
    new = new_run()
    with pytest.raises(StoreError) as refused:
        store.create_run(new, T0, ACTOR)
    assert isinstance(refused.value.__cause__, psycopg.errors.DivisionByZero)
    monkeypatch.setattr(base.PostgresBase, "_append_statement", base.PostgresBase._append_statement)
    return new.run_id


def test_a_start_whose_audit_entry_fails_leaves_no_run(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    run_id = start_whose_audit_entry_fails(store, monkeypatch)
    assert store.get_run(run_id) is None
    assert store.count_runs(RunFilter()) == 0
    assert_chain_intact(store)


def test_a_start_sent_as_a_transaction_per_statement_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the pipeline synced after every statement, each then committed on
    # its own; the run's insert commits before its audit entry fails.
    sent = connection.Cursor.execute

    def execute_and_sync(self: connection.Cursor, query: Any, params: Any = None, **kw: Any) -> Any:
        sent(self, query, params, **kw)
        if self.connection._pipeline is not None:
            self.connection._pipeline.sync()
        return self

    monkeypatch.setattr(connection.Cursor, "execute", execute_and_sync)
    run_id = start_whose_audit_entry_fails(store, monkeypatch)
    assert store.get_run(run_id) is not None  # the check above catches it


def start_whose_entries_fail_in_one_statement(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[BaseException | None, bool]:
    """A start whose audit entries' insert, merged into its one statement with the run's
    insert, fails on the server (its entries are not JSON): the error the start raised
    (None if it returned), and whether the run exists afterwards."""
    single = merged.one_statement
    merges: list[bool] = []

    def merging(writes: Any, last: Any) -> Any:
        statement = single(writes, last)
        merges.append(statement is not None)
        return statement

    monkeypatch.setattr(merged, "one_statement", merging)
    monkeypatch.setattr(
        base.PostgresBase, "_append_statement", staticmethod(lambda _q: (audit.STORE_SQL, ["{"]))
    )
    new = new_run()
    raised: BaseException | None = None
    try:
        store.create_run(new, T0, ACTOR)
    except StoreError as exc:
        raised = exc
    monkeypatch.undo()
    assert merges == [True]
    return raised, store.get_run(new.run_id) is not None


def test_a_start_whose_entries_fail_in_its_one_statement_leaves_no_run(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    raised, exists = start_whose_entries_fail_in_one_statement(store, monkeypatch)
    assert raised is not None
    assert isinstance(raised.__cause__, psycopg.errors.InvalidTextRepresentation)
    assert not exists
    assert store.count_runs(RunFilter()) == 0
    assert_chain_intact(store)


def test_a_merge_that_keeps_only_the_runs_insert_is_caught(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the statement holds the run's insert alone; the start returns and
    # its run is committed without its audit entries.
    single = merged.one_statement
    monkeypatch.setattr(merged, "one_statement", lambda writes, last: single(writes[:1], last))
    assert start_whose_entries_fail_in_one_statement(store, monkeypatch) == (None, True)
