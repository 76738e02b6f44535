"""The benchmark measures SQLite past its WAL file's first fill (``bench.workloads.fill_wal``):
afterwards a store's commits write over the WAL file, as in a store that has run a while,
instead of growing it, as a new database's do."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.stores import SQLiteTarget
from bench.workloads import Session, fill_wal, session, small_config

from surefoot.store.sqlite.base import WAL_AUTOCHECKPOINT_PAGES

pytestmark = pytest.mark.slow

BATCH = 200
PAGE = 4096


def _one_batch(s: Session) -> None:
    for handle in s.client.start_many("warm_up", [(value,) for value in range(BATCH)]):
        handle.result(timeout=60)


def _wal_growth_of_a_batch_after_fill(directory: Path, *, fill: bool) -> tuple[int, int]:
    """The WAL file's size after ``fill_wal``, and how much one more batch of runs grew it."""
    target = SQLiteTarget(directory)
    with session(target, small_config(directory, concurrency=32, fill_wal=fill), "fill") as s:
        s.start_workers(1, 32)
        fill_wal(s)
        wal = target.wal_file(s.url)
        size = wal.stat().st_size
        _one_batch(s)
        return size, wal.stat().st_size - size


def test_after_fill_wal_commits_write_over_the_wal_file(tmp_path: Path) -> None:
    size, growth = _wal_growth_of_a_batch_after_fill(tmp_path, fill=True)
    assert size >= WAL_AUTOCHECKPOINT_PAGES * PAGE  # it went through the first checkpoint
    assert growth == 0


def test_negative_control_a_new_database_grows_its_wal_file(tmp_path: Path) -> None:
    # The measurement fill_wal protects: without it (``--new-wal``), a batch of runs on a new
    # database grows the WAL file with its commits.
    size, growth = _wal_growth_of_a_batch_after_fill(tmp_path, fill=False)
    assert size < WAL_AUTOCHECKPOINT_PAGES * PAGE
    assert growth > 0
