"""Round trips of the PostgreSQL store's transactions (``store/postgres/connection.py``).

A transaction's ``BEGIN`` travels with its first statement and its ``COMMIT`` with its
last ones, so an unloaded run costs the round trips its statements need and no more: the
client's start one (its insert and audit entry with ``COMMIT``; see
``test_postgres_blind_starts.py``), a lookup one, a
claim of a new run two (the claim statement, which finds, locks and leases the run and
tells whether it has a history to load, then the audit entry with ``COMMIT``), a run's end
two (its lease check with its writes, then the audit entry with ``COMMIT``), a claim that
finds nothing two (it changed nothing, so it needs no transaction id before its
``COMMIT``), a claim that takes over a run with a history three (its open attempts ended
and its history read in one more). Counted from libpq's protocol trace of every connection the store
opens: a round trip ends with the server's ``ReadyForQuery``.

The negative control sends each ``BEGIN`` on its own, waiting for its answer, as psycopg
does by itself: every count rises by one, which the same assertions catch.

Statements are counted from the same trace: each costs the worker and the server its own
parse, bind and execute. A run's end sends the ends of the steps it holds (quick steps'
results, committed with it) in two statements however many there are: their attempt rows
in one, their journal entries in another; the negative control sends each step's in
statements of their own. A start that reads nothing sends neither ``BEGIN`` nor ``COMMIT``
(its one statement is its implicit transaction); the negative control sends both. That one
statement holds its insert, its audit entry and its wake-up, and a run's end sends its audit
entries and its wake-up as one statement too (``store/postgres/merged.py``); the negative
control sends each apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from surefoot.domain.status import RunStatus
from surefoot.store.base import RunEnd
from surefoot.store.postgres import PostgresStore, claims, connection, merged
from surefoot.store.postgres.base import PostgresBase
from surefoot.store.postgres.execution import ExecutionMixin
from tests import postgres_support
from tests.contract.support import (
    ACTOR,
    LEASE_S,
    T0,
    at,
    attempt,
    claim_one,
    held_steps,
    new_run,
)

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url


class Traced:
    """A store whose every connection writes libpq's protocol trace to one file."""

    def __init__(self, url: str, trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self._file = trace.open("w")
        self._path = trace
        opened = PostgresBase._note_opened

        def traced(base: PostgresBase, conn: psycopg.Connection[Any]) -> None:
            opened(base, conn)
            conn.pgconn.trace(self._file.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

        monkeypatch.setattr(PostgresBase, "_note_opened", traced)
        self.store = PostgresStore(url)
        # The audit sweeper's sweeps (50 ms after an audited commit, on a connection of
        # their own) would land in whichever operation was being counted: none here.
        self.store._sweeper.stop()

    def round_trips(self, operation: Callable[[], object]) -> int:
        """How many times the server said it was ready for more while ``operation`` ran."""
        before = self._ready()
        operation()
        return self._ready() - before

    def _ready(self) -> int:
        self._file.flush()
        return sum("\tReadyForQuery\t" in line for line in self._path.read_text().splitlines())

    def sent(self) -> int:
        """Statements sent so far: the client's ``Execute`` and ``Query`` messages."""
        self._file.flush()
        return sum(
            line.startswith("F\t") and ("\tExecute\t" in line or "\tQuery\t" in line)
            for line in self._path.read_text().splitlines()
        )

    def close(self) -> None:
        self.store.close()
        self._file.close()


@pytest.fixture
def traced(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Traced]:
    opened = Traced(postgres_url, tmp_path / "libpq.trace", monkeypatch)
    yield opened
    opened.close()


def round_trips_of_one_run(traced: Traced) -> dict[str, int]:
    store = traced.store
    store.create_run(new_run(), T0, ACTOR)  # connections opened and statements prepared
    warm = claim_one(store, "w", T0)
    store.finish_run(warm.lease, RunEnd(RunStatus.SUCCEEDED, output='"done"'), T0)
    run = new_run()
    counts = {"start": traced.round_trips(lambda: store.create_run(run, T0, ACTOR))}
    counts["lookup"] = traced.round_trips(lambda: store.get_run(run.run_id))
    claimed: list[Any] = []
    counts["claim"] = traced.round_trips(lambda: claimed.append(claim_one(store, "w", at(1))))
    lease = claimed[0].lease
    end = RunEnd(RunStatus.SUCCEEDED, output='"done"')
    counts["end"] = traced.round_trips(lambda: store.finish_run(lease, end, at(2)))
    finished = store.get_run(run.run_id)
    assert finished is not None
    assert finished.status is RunStatus.SUCCEEDED
    nothing: list[Any] = []
    counts["empty claim"] = traced.round_trips(
        lambda: nothing.extend(
            store.claim("w", workflows=["flow"], queues=None, limit=1, lease_s=30, now=at(3))
        )
    )
    assert nothing == []
    store.create_run(new_run(), at(4), ACTOR)
    stopped = claim_one(store, "w", at(4), lease_s=LEASE_S)
    store.begin_attempt(stopped.lease, attempt(stopped.lease, at(5)))
    later = at(5 + LEASE_S)
    taken: list[Any] = []
    counts["take over"] = traced.round_trips(
        lambda: taken.append(claim_one(store, "w2", later, lease_s=LEASE_S))
    )
    assert taken[0].taken_over
    assert [a.outcome.value for a in taken[0].interrupted] == ["interrupted"]
    return counts


EXPECTED = {"start": 1, "lookup": 1, "claim": 2, "end": 2, "empty claim": 2, "take over": 3}


def test_a_transaction_begins_and_commits_in_the_round_trips_of_its_statements(
    traced: Traced,
):
    assert round_trips_of_one_run(traced) == EXPECTED


def test_a_begin_sent_on_its_own_is_caught(traced: Traced, monkeypatch: pytest.MonkeyPatch):
    # Negative control: each transaction's BEGIN sent alone, answered before its first
    # statement goes (what psycopg does when it opens transactions itself).
    def begin_at_once(conn: psycopg.Connection[Any], statement: str) -> None:
        conn.execute(statement)

    monkeypatch.setattr(connection, "begin", begin_at_once)
    counts = round_trips_of_one_run(traced)
    assert counts != EXPECTED
    # Every transaction pays at least one more (psycopg prepares the BEGIN it has sent
    # five times, which costs another); a lookup is not a transaction.
    assert counts["lookup"] == EXPECTED["lookup"]
    assert all(counts[name] > EXPECTED[name] for name in EXPECTED if name != "lookup")


def test_a_claim_that_reads_every_history_is_caught(
    traced: Traced, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: a claim statement that says every run has a history to load, so
    # each claim reads histories in a round trip of its own, as claims once all did.
    built = claims.statement

    def every_run_has_one(groups: Sequence[claims.Group]) -> tuple[str, dict[str, int]]:
        sql, limits = built(groups)
        return sql.replace(f"({claims.HAS_HISTORY}) AS", "true AS"), limits

    monkeypatch.setattr(claims, "statement", every_run_has_one)
    counts = round_trips_of_one_run(traced)
    assert counts != EXPECTED
    assert counts == {**EXPECTED, "claim": 3}


# -- statements -------------------------------------------------------------------------------


def statements(traced: Traced, operation: Callable[[], object]) -> int:
    """How many statements the store sent while ``operation`` ran (each an ``Execute`` of
    the extended protocol, or a ``Query`` of the simple one)."""
    traced.round_trips(lambda: None)  # flushed: the lines before are not counted
    before = traced.sent()
    operation()
    return traced.sent() - before


def statements_of_a_run(traced: Traced) -> dict[str, int]:
    """A start that reads nothing (the run, its audit entry and its wake-up as one
    statement: no BEGIN and no COMMIT), the claim of a new run (BEGIN, the sort setting and
    its reset around the claim statement, the audit entry, COMMIT), and a run's end with
    three held step ends (BEGIN, the lease check, the attempt rows, the journal entries, the
    run, the audit entries with the wake-up, COMMIT)."""
    store = traced.store
    store.create_run(new_run(), T0, ACTOR)  # connections opened and statements prepared
    warm = claim_one(store, "w", T0)
    store.finish_run(
        warm.lease, RunEnd(RunStatus.SUCCEEDED, '"done"', steps=held_steps(warm.lease)), T0
    )
    run = new_run()
    counts = {"start": statements(traced, lambda: store.create_run(run, T0, ACTOR))}
    claimed: list[Any] = []
    counts["claim"] = statements(traced, lambda: claimed.append(claim_one(store, "w", at(1))))
    lease = claimed[0].lease
    end = RunEnd(RunStatus.SUCCEEDED, '"done"', steps=held_steps(lease))
    counts["end"] = statements(traced, lambda: store.finish_run(lease, end, at(2)))
    assert [a.position for a in store.list_attempts(run.run_id)] == [1, 2, 3]
    return counts


STATEMENTS = {"start": 1, "claim": 6, "end": 7}


def test_a_run_end_sends_its_held_steps_in_two_statements(traced: Traced):
    assert statements_of_a_run(traced) == STATEMENTS


def test_held_steps_sent_one_by_one_are_caught(traced: Traced, monkeypatch: pytest.MonkeyPatch):
    # Negative control: each held step's attempt row and journal entry in statements of
    # their own, as every store did before (two more per step after the first).
    monkeypatch.setattr(ExecutionMixin, "_together", lambda _self, _steps: False)
    assert statements_of_a_run(traced) == {**STATEMENTS, "end": 11}


def test_a_start_sent_with_begin_and_commit_is_caught(
    traced: Traced, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: every transaction with its own BEGIN and COMMIT, as before.
    monkeypatch.setattr(connection, "unsent", lambda _conn: False)
    assert statements_of_a_run(traced) == {**STATEMENTS, "start": 4}


def test_inserts_and_wake_ups_sent_apart_are_caught(
    traced: Traced, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: nothing merged, as before: the start's insert, audit entry and
    # wake-up are three statements of one pipeline, and a run's end sends its audit
    # entries and its wake-up apart.
    monkeypatch.setattr(merged, "one_statement", lambda _writes, _last: None)
    assert statements_of_a_run(traced) == {**STATEMENTS, "start": 3, "end": 8}
