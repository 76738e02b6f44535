"""On SQLite, the runs that fall due by time alone are found through indexes that hold only
them (schema 8), whatever the runs table holds besides.

A claim asks which queues hold waiting runs whose wake time has come and running runs whose
lease has run out, then reads those runs; an idle worker asks when the next of them falls
due (``next_due``), every 50 ms. The store never gathers statistics, so SQLite plans these
by rule: through ``runs_claimable`` the expired leases were looked for among every run
being executed, and through ``runs_workflow`` the next lease to run out among every run of
the workflows ever started (28 ms with 200,000 finished runs, and growing). The statements
name ``runs_waking`` and ``runs_leased``; the tests read their plans, with the statements
as they were before schema 8 as the negative control, and check that the answers stay
right among runs held, waiting and finished.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from surefoot.domain.records import NewRun
from surefoot.store.sqlite import SQLiteStore
from surefoot.store.sqlite.leases import CLAIM_KINDS, CLAIMABLE_QUEUES, NEXT_DUE

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
NOW = "2030-01-01T12:00:00.000000+00:00"

# The statements as every release before schema 8 wrote them (the negative control).
_BEFORE = {
    "claimable queues": (
        "SELECT DISTINCT 'waking', queue FROM runs WHERE status = 'waiting'"
        " AND wake_at IS NOT NULL AND wake_at <= ?"
        " UNION ALL SELECT DISTINCT 'expired', queue FROM runs"
        " WHERE status IN ('running', 'compensating') AND lease_expires_at <= ?",
        (NOW, NOW),
    ),
    "claim waking": (
        "SELECT * FROM runs WHERE status = 'waiting' AND wake_at IS NOT NULL"
        " AND wake_at <= ? AND queue = ? AND workflow IN (?)"
        " ORDER BY priority DESC, created_at LIMIT ?",
        (NOW, "default", "flow", 10),
    ),
    "claim expired": (
        "SELECT * FROM runs WHERE status IN ('running', 'compensating')"
        " AND lease_expires_at <= ? AND queue = ? AND workflow IN (?)"
        " ORDER BY priority DESC, created_at LIMIT ?",
        (NOW, "default", "flow", 10),
    ),
    "next due": (
        "SELECT MIN(due) FROM (SELECT MIN(wake_at) AS due FROM runs WHERE status = 'waiting'"
        " AND wake_at > ? AND workflow IN (?) UNION ALL SELECT MIN(lease_expires_at) FROM runs"
        " WHERE status IN ('running', 'compensating') AND lease_expires_at > ?"
        " AND lease_owner IS NOT ? AND workflow IN (?))",
        (NOW, "flow", NOW, "w", "flow"),
    ),
}


def _now_written() -> dict[str, tuple[str, tuple[object, ...]]]:
    kinds = dict(CLAIM_KINDS)
    claim = " AND queue = ? AND workflow IN (?) ORDER BY priority DESC, created_at LIMIT ?"
    return {
        # The pending part is the loose scan of runs_claimable, unchanged: only its timed
        # parts are compared.
        "claimable queues": (
            CLAIMABLE_QUEUES[CLAIMABLE_QUEUES.index("SELECT DISTINCT") :],
            (NOW, NOW),
        ),
        "claim waking": (f"SELECT * FROM {kinds['waking']}{claim}", (NOW, "default", "flow", 10)),
        "claim expired": (
            f"SELECT * FROM {kinds['expired']}{claim}",
            (NOW, "default", "flow", 10),
        ),
        "next due": (NEXT_DUE.format(marks="?"), (NOW, "flow", NOW, "w", "flow")),
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'due.db'}")
    yield opened
    opened.close()


def _reads(store: SQLiteStore, sql: str, params: tuple[object, ...]) -> list[str]:
    with closing(sqlite3.connect(store.path)) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    reads = [step for step in plan if step.startswith(("SEARCH runs ", "SCAN runs"))]
    assert reads, plan
    return reads


@pytest.mark.parametrize("statement", sorted(_BEFORE))
@pytest.mark.parametrize("version", ["as-written", "negative-control"])
def test_runs_due_by_time_are_read_through_the_indexes_that_hold_only_them(
    store: SQLiteStore, statement: str, version: str
) -> None:
    sql, params = (_now_written() if version == "as-written" else _BEFORE)[statement]
    reads = _reads(store, sql, params)
    timed = all("runs_waking" in step or "runs_leased" in step for step in reads)
    assert timed == (version == "as-written"), reads


def _new(workflow: str = "flow") -> NewRun:
    return NewRun(uuid.uuid4().hex, workflow, "default", "[]", "h")


def test_due_runs_are_found_among_runs_held_waiting_and_finished(store: SQLiteStore) -> None:
    """The answers through the new indexes: a claim takes the expired lease and the due
    wait and nothing else; ``next_due`` is the soonest wake or other worker's expiry."""
    store.create_runs([_new() for _ in range(6)], T0, "test")
    held = store.claim("other", workflows=["flow"], queues=None, limit=6, lease_s=60, now=T0)
    expiring, waking, finished, mine = (
        held[0].run.run_id,
        held[1].run.run_id,
        held[2].run.run_id,
        held[3].run.run_id,
    )
    with closing(sqlite3.connect(store.path)) as conn, conn:
        # A run whose lease ran out, one that waits for a time that has come, one that
        # waits for a later time, one finished long ago, and one this worker holds.
        conn.execute(
            "UPDATE runs SET lease_expires_at = ? WHERE run_id = ?",
            ("2030-01-01T12:00:30.000000+00:00", expiring),
        )
        conn.execute(
            "UPDATE runs SET status = 'waiting', lease_owner = NULL, lease_expires_at = NULL,"
            " wake_at = ? WHERE run_id = ?",
            ("2030-01-01T12:00:20.000000+00:00", waking),
        )
        conn.execute(
            "UPDATE runs SET status = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,"
            " wake_at = ? WHERE run_id = ?",
            ("2030-01-01T12:00:10.000000+00:00", finished),
        )
        conn.execute(
            "UPDATE runs SET lease_owner = 'w', lease_expires_at = ? WHERE run_id = ?",
            ("2030-01-01T12:00:05.000000+00:00", mine),
        )
    assert store.next_due("w", workflows=["flow"], now=T0) == T0 + timedelta(seconds=20)
    assert store.next_due("w", workflows=["other-flow"], now=T0) is None
    later = T0 + timedelta(seconds=40)
    taken = store.claim("w2", workflows=["flow"], queues=None, limit=10, lease_s=60, now=later)
    assert sorted(claimed.run.run_id for claimed in taken) == sorted([expiring, waking, mine])
