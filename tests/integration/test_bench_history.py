"""The history benchmark (``bench.history``) measures a worker beside finished runs that the
store reads as its own: rows written straight into the schema must be runs the store
lists, with the times and status it would have written, or the benchmark measures nothing
like a store with a history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench.history import WORKFLOW, fill_history, measure
from bench.stores import SQLiteTarget

from surefoot.domain.records import RunFilter
from surefoot.domain.status import RunStatus
from surefoot.store.sqlite import SQLiteStore

pytestmark = pytest.mark.slow


def test_the_history_is_runs_the_store_reads_as_finished(tmp_path: Path) -> None:
    target = SQLiteTarget(tmp_path)
    url = target.new_database()
    store = SQLiteStore(url)
    try:
        fill_history(target, url, 1_500)
        every = RunFilter(workflow=WORKFLOW, limit=2_000)
        runs = store.list_runs(every)
        assert len(runs) == 1_500
        assert {run.status for run in runs} == {RunStatus.SUCCEEDED}
        assert len({run.run_id for run in runs}) == 1_500
        for run in runs:
            assert run.finished_at is not None
            assert datetime(2020, 1, 1, tzinfo=UTC) < run.created_at <= run.finished_at
            assert run.created_at < datetime(2021, 1, 1, tzinfo=UTC)
        pending = RunFilter(status=(RunStatus.PENDING, RunStatus.RUNNING))
        assert store.count_runs(pending) == 0
    finally:
        store.close()


def test_the_benchmark_times_only_the_runs_it_started(tmp_path: Path) -> None:
    result = measure(SQLiteTarget(tmp_path), tmp_path, 500, rate=100, seconds=0.5)
    assert result.runs == 50
    assert 0 < result.p50_ms <= result.p99_ms < 60_000
    assert result.cpu_per_run_ms > 0
    assert result.overview_ms > 0
    assert result.runs_page_ms > 0
