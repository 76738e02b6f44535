"""Statements the SQLite store sends for one run, counted as the store makes them: each
``execute`` or ``executemany`` of a cursor of the writing connection, and each ``COMMIT``.

Every statement costs the writing thread a call into SQLite with the interpreter lock
released and taken again, and a run's are made one after another. A start sends
``BEGIN IMMEDIATE``, the run's insert, a read of the audit chain's head, the audit entry,
the new head and ``COMMIT``: alone in its batch, it needs no savepoint. A claim of a new
run sends the level of the disk wait for claims, ``BEGIN IMMEDIATE``, one lookup of the
queues holding claimable runs, the run's lookup in its queue, the lease (which tells that
the run has no history to read), a read of the head, the audit entry, the new head and
``COMMIT``. A run's end with three held steps sends the level of the disk wait for it,
``BEGIN IMMEDIATE``, the lease check, the attempt rows in one statement and the journal
entries in another, the run, its open review items, a read of the head, the seven audit
entries in one statement, the new head and ``COMMIT``. The negative controls send what the
store sent before: a savepoint around every item, the histories of new runs, an audit
entry per statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from surefoot.domain.status import RunStatus
from surefoot.store.base import RunEnd
from surefoot.store.sqlite import SQLiteStore, audit_chain, leases
from surefoot.store.sqlite.group_commit import GroupCommitter
from tests.contract.support import (
    ACTOR,
    T0,
    at,
    claim_one,
    held_steps,
    new_run,
)


class _Counted:
    """A cursor or connection of the writing connection, counting what it sends."""

    def __init__(self, target: Any, sent: list[str]) -> None:
        self._target, self._sent = target, sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def cursor(self) -> _Counted:
        return _Counted(self._target.cursor(), self._sent)

    def execute(self, sql: str, *args: Any) -> Any:
        self._sent.append(sql)
        return self._target.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        self._sent.append(sql)
        return self._target.executemany(sql, rows)

    def commit(self) -> None:
        self._sent.append("COMMIT")
        self._target.commit()


@pytest.fixture
def counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SQLiteStore, list[str]]]:
    sent: list[str] = []
    attempt_batch = GroupCommitter._attempt

    def counting(self: GroupCommitter, conn: sqlite3.Connection, batch: list[Any]) -> None:
        attempt_batch(self, _Counted(conn, sent), batch)  # type: ignore[arg-type]

    monkeypatch.setattr(GroupCommitter, "_attempt", counting)
    store = SQLiteStore(f"sqlite:///{tmp_path / 'statements.db'}")
    yield store, sent
    store.close()


def statements_of_a_run(store: SQLiteStore, sent: list[str]) -> dict[str, int]:
    def count(operation: Callable[[], object]) -> int:
        sent.clear()
        operation()
        return len(sent)

    warm = new_run()  # the writing connection opened, the first claim's level set
    store.create_run(warm, T0, ACTOR)
    lease = claim_one(store, "w", T0).lease
    store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, '"done"', steps=held_steps(lease)), T0)
    run = new_run()
    counts = {"start": count(lambda: store.create_run(run, at(1), ACTOR))}
    claimed: list[Any] = []
    counts["claim"] = count(lambda: claimed.append(claim_one(store, "w", at(1))))
    lease = claimed[0].lease
    end = RunEnd(RunStatus.SUCCEEDED, '"done"', steps=held_steps(lease))
    counts["end"] = count(lambda: store.finish_run(lease, end, at(2)))
    assert [a.position for a in store.list_attempts(run.run_id)] == [1, 2, 3]
    assert store.get_run(run.run_id).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    return counts


STATEMENTS = {"start": 6, "claim": 9, "end": 11}


def test_a_run_costs_the_statements_it_needs(counted: tuple[SQLiteStore, list[str]]):
    assert statements_of_a_run(*counted) == STATEMENTS


def test_a_savepoint_around_a_lone_item_is_caught(
    counted: tuple[SQLiteStore, list[str]], monkeypatch: pytest.MonkeyPatch
):
    # Negative control: every item in a savepoint of its own, a lone one too (two more).
    attempt_batch = GroupCommitter._attempt

    def with_savepoints(self: GroupCommitter, conn: Any, batch: list[Any]) -> None:
        fns = [work.fn for work in batch]
        for work, fn in zip(batch, fns, strict=True):
            work.fn = _in_savepoint(fn)
        try:
            attempt_batch(self, conn, batch)
        finally:
            for work, fn in zip(batch, fns, strict=True):
                work.fn = fn

    monkeypatch.setattr(GroupCommitter, "_attempt", with_savepoints)
    assert statements_of_a_run(*counted) == {k: v + 2 for k, v in STATEMENTS.items()}


def _in_savepoint(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(cur: Any) -> Any:
        cur.execute("SAVEPOINT surefoot_op")
        result = fn(cur)
        cur.execute("RELEASE surefoot_op")
        return result

    return wrapped


def test_a_claim_that_reads_the_histories_of_new_runs_is_caught(
    counted: tuple[SQLiteStore, list[str]], monkeypatch: pytest.MonkeyPatch
):
    # Negative control: a lease statement that says every run has a history (three more).
    monkeypatch.setattr(leases, "_LEASE", leases._LEASE.replace(leases.HAS_HISTORY, "1"))
    assert statements_of_a_run(*counted) == {**STATEMENTS, "claim": STATEMENTS["claim"] + 3}


def test_audit_entries_inserted_one_by_one_are_caught(
    counted: tuple[SQLiteStore, list[str]], monkeypatch: pytest.MonkeyPatch
):
    # Negative control: each entry in a statement of its own (a run's end appends seven).
    def one_by_one(cur: Any, sql: str, rows: Sequence[Any]) -> None:
        for row in rows:
            cur.execute(sql, row)

    kept = audit_chain.AuditAppender.before_commit

    def before_commit(self: audit_chain.AuditAppender, cur: Any) -> None:
        entries, self._entries = self._entries, []
        one_by_one(cur, audit_chain._INSERT_ENTRIES, entries)
        kept(self, cur)

    monkeypatch.setattr(audit_chain.AuditAppender, "before_commit", before_commit)
    counts = statements_of_a_run(*counted)
    assert counts["end"] == STATEMENTS["end"] + 6
