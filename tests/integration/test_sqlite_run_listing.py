"""On SQLite, runs are listed newest first through an index (schema 9), not by sorting every
run the store holds: the console's runs page, the API and `surefoot runs list` ask for the
newest page, and a store that has run for a year holds millions of runs (1.3 s a page with a
million before; 14 ms with the index)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from surefoot.domain.records import NewRun, RunFilter
from surefoot.store.sqlite import SQLiteStore
from surefoot.store.sqlite.operators import run_list_query

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
