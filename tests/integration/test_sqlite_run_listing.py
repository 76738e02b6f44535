"""On SQLite, runs are listed newest first through an index (schema 9), not by sorting every
run the store holds: the console's runs page, the API and `surefoot runs list` ask for the
newest page, and a store that has run for a year holds millions of runs (1.3 s a page with a
million before; 14 ms with the index). A page filtered by status is looked for among the
newest runs first, then, if it is not there, among every run of the status."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from surefoot.domain.failures import FailureClass
from surefoot.domain.records import NewRun, RunFilter
from surefoot.domain.status import RunStatus
from surefoot.store.sqlite import SQLiteStore, operators
from surefoot.store.sqlite.operators import newest_runs_query, run_list_query

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'listing.db'}")
    # Three moments, several runs at each: ties are ordered by run id.
    for second in (0, 2, 1):
        news = [NewRun(uuid.uuid4().hex, "flow", "default", "[]", "h") for _ in range(4)]
        opened.create_runs(news, T0 + timedelta(seconds=second), "test")
    yield opened
    opened.close()


def test_runs_are_listed_newest_first_a_page_at_a_time(store: SQLiteStore) -> None:
    every = store.list_runs(RunFilter(limit=100))
    expected = sorted(every, key=lambda run: run.run_id)
    expected.sort(key=lambda run: run.created_at, reverse=True)
    assert [run.run_id for run in every] == [run.run_id for run in expected]
    pages = [store.list_runs(RunFilter(limit=5, offset=offset)) for offset in (0, 5, 10)]
    assert [run.run_id for page in pages for run in page] == [run.run_id for run in expected]


@pytest.mark.parametrize("index", ["as-migrated", "negative-control-without-runs_created"])
def test_the_newest_runs_are_read_in_order_not_sorted(store: SQLiteStore, index: str) -> None:
    sql, params = run_list_query(RunFilter())
    with closing(sqlite3.connect(store.path)) as conn:
        if index != "as-migrated":
            conn.execute("DROP INDEX runs_created")  # as every schema before 9
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    # Runs created in the same microsecond may still be put in run id order as they are
    # read ("TEMP B-TREE FOR RIGHT PART OF ORDER BY"); what must not be is a sort of all.
    sorts_every_run = "USE TEMP B-TREE FOR ORDER BY" in plan
    assert sorts_every_run == (index != "as-migrated"), plan


# A listing filtered by a status that piles up (succeeded, failed, cancelled) looks among
# the newest runs first (``newest_runs_query``) and reads every run of the status only when
# the page is not among them.
STATUSES = ["succeeded", "succeeded", "pending", "succeeded", "failed", "succeeded", "cancelled"]
FILTERS = [
    RunFilter(status=(RunStatus.SUCCEEDED,)),
    RunFilter(status=(RunStatus.PENDING,)),
    RunFilter(status=(RunStatus.PENDING, RunStatus.SUCCEEDED)),
    RunFilter(status=(RunStatus.FAILED, RunStatus.CANCELLED)),
    RunFilter(status=(RunStatus.SUCCEEDED,), queue="other"),
    RunFilter(status=(RunStatus.SUCCEEDED,), created_after=T0 + timedelta(seconds=10)),
    RunFilter(status=(RunStatus.FAILED,), failure_class=FailureClass.DATA),
]


@pytest.fixture
def statuses(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'statuses.db'}")
    for second in range(42):
        queue = "other" if second % 3 == 0 else "default"
        new = NewRun(uuid.uuid4().hex, "flow", queue, "[]", "h")
        opened.create_runs([new], T0 + timedelta(seconds=second), "test")
        status = STATUSES[second % len(STATUSES)]
        with closing(sqlite3.connect(opened.path)) as conn, conn:
            conn.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, new.run_id))
            if status == "failed":
                conn.execute(
                    "INSERT INTO dead_letters (run_id, generation, workflow, failure_class,"
                    " reason, attempts, status, dead_lettered_at)"
                    " VALUES (?, 0, 'flow', ?, 'r', 1, 'open', ?)",
                    (new.run_id, "data" if second % 2 else "permanent", "2030-01-01T13:00:00"),
                )
    yield opened
    opened.close()


def _reference(store: SQLiteStore, run_filter: RunFilter) -> list[str]:
    sql, params = run_list_query(run_filter)
    with closing(sqlite3.connect(store.path)) as conn:
        return [row[0] for row in conn.execute(sql.replace("SELECT *", "SELECT run_id"), params)]


@pytest.mark.parametrize("newest", [4, 20, 5_000])
@pytest.mark.parametrize("run_filter", FILTERS)
@pytest.mark.parametrize(("limit", "offset"), [(3, 0), (3, 4), (50, 0), (2, 30)])
def test_a_page_by_status_is_the_page_of_every_run_of_the_status(
    statuses: SQLiteStore,
    monkeypatch: pytest.MonkeyPatch,
    newest: int,
    run_filter: RunFilter,
    limit: int,
    offset: int,
) -> None:
    monkeypatch.setattr(operators, "NEWEST_RUNS", newest)
    asked = replace(run_filter, limit=limit, offset=offset)
    found = [run.run_id for run in statuses.list_runs(asked)]
    assert found == _reference(statuses, asked)


def test_negative_control_the_newest_runs_alone_miss_older_pages(statuses: SQLiteStore) -> None:
    """Without the fall-back to every run of the status, the check above fails: among the
    four newest runs there is no page of three failed runs."""
    asked = RunFilter(status=(RunStatus.FAILED,), limit=3, offset=0)
    query = newest_runs_query(asked)
    assert query is not None
    sql, params = query
    with closing(sqlite3.connect(statuses.path)) as conn:
        newest_only = [row[0] for row in conn.execute(sql.replace("LIMIT 5000", "LIMIT 4"), params)]
    assert newest_only != _reference(statuses, asked)
    assert [run.run_id for run in statuses.list_runs(asked)] == _reference(statuses, asked)


def test_the_newest_runs_are_read_in_order_for_a_status_filter(statuses: SQLiteStore) -> None:
    query = newest_runs_query(RunFilter(status=(RunStatus.SUCCEEDED,)))
    assert query is not None
    with closing(sqlite3.connect(statuses.path)) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query[0]}", query[1])]
    assert "SCAN runs USING INDEX runs_created" in plan, plan
    assert not any("runs_claimable" in step for step in plan), plan
