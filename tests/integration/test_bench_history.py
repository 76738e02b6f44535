"""The history benchmark (``bench.history``) measures a worker beside finished runs that the
store reads as its own: rows written straight into the schema must be runs the store
lists, with the times and status it would have written, or the benchmark measures nothing
like a store with a history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench.history import WORKFLOW, fill_history, measure
from bench.stores import PostgresTarget, SQLiteTarget

from surefoot.domain.records import RunFilter
from surefoot.domain.status import RunStatus
from surefoot.store.base import Store
from surefoot.store.postgres import PostgresStore
from surefoot.store.sqlite import SQLiteStore
from tests import postgres_support

pytestmark = pytest.mark.slow

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url


def _is_a_finished_history(store: Store, finished: int) -> None:
    runs = store.list_runs(RunFilter(workflow=WORKFLOW, limit=finished + 100))
    assert len(runs) == finished
    assert {run.status for run in runs} == {RunStatus.SUCCEEDED}
    assert len({run.run_id for run in runs}) == finished
    for run in runs:
        assert run.finished_at is not None
        assert datetime(2020, 1, 1, tzinfo=UTC) < run.created_at <= run.finished_at
        assert run.created_at < datetime(2021, 1, 1, tzinfo=UTC)
    assert store.count_runs(RunFilter(status=(RunStatus.PENDING, RunStatus.RUNNING))) == 0


def test_the_history_is_runs_the_store_reads_as_finished(tmp_path: Path) -> None:
    target = SQLiteTarget(tmp_path)
    url = target.new_database()
    store = SQLiteStore(url)
    try:
        fill_history(target, url, 1_500)
        _is_a_finished_history(store, 1_500)
    finally:
        store.close()


@pytest.mark.postgres
def test_the_history_is_runs_the_postgres_store_reads_as_finished(postgres_url: str) -> None:
    target = PostgresTarget(postgres_support.admin_url())
    store = PostgresStore(postgres_url)
    try:
        fill_history(target, postgres_url, 1_500)
        _is_a_finished_history(store, 1_500)
    finally:
        store.close()
        target.close()


def test_the_benchmark_times_only_the_runs_it_started(tmp_path: Path) -> None:
    result = measure(SQLiteTarget(tmp_path), tmp_path, 500, rate=100, seconds=0.5)
    assert result.runs == 50
    assert 0 < result.p50_ms <= result.p99_ms < 60_000
    assert result.cpu_per_run_ms > 0
    assert result.overview_ms > 0
    assert result.runs_page_ms > 0
