"""A run's audit entries on SQLite are found through the entity index, not by reading the
whole log: the console, the API and `surefoot audit list --run-id` ask for them, and a log
that has run for years holds millions of entries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from surefoot.domain.records import AuditRecord
from surefoot.store.sqlite import SQLiteStore
from surefoot.store.sqlite.operators import audit_query

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
# Ids a prefix match could confuse: another run whose id starts with this one's, ids
# holding LIKE's wildcards, and a character that sorts right after "/".
IDS = ["r1", "r1/1/1", "r1/2/1", "r10", "r10/1/1", "r1x", "r1.", "r1-", "r1_/1/1", "r1%", "r10"]
ASKED = ["r1", "r10", "r1_", "r1%", "missing"]

# How every release before schema 7 looked a run's entries up (the negative control).
_BEFORE = (
    "SELECT * FROM audit_log WHERE seq > ? AND (entity_id = ?"
    " OR substr(entity_id, 1, ?) = ?) ORDER BY seq LIMIT ?"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    for entity_id in IDS:
        opened.append_audit(AuditRecord("tester", "test.noted", "run", entity_id, None, None), T0)
    yield opened
    opened.close()


def _expected(entity_id: str, after_seq: int, limit: int) -> list[int]:
    """Brute force: the seqs of the run's own entries and its attempts', in order."""
    seqs = [
        seq
        for seq, stored in enumerate(IDS, start=1)
        if (stored == entity_id or stored.startswith(f"{entity_id}/")) and seq > after_seq
    ]
    return seqs[:limit]


@pytest.mark.parametrize("entity_id", ASKED)
@pytest.mark.parametrize(("after_seq", "limit"), [(0, 100), (2, 100), (0, 2)])
def test_a_runs_entries_are_exactly_its_own_and_its_attempts(
    store: SQLiteStore, entity_id: str, after_seq: int, limit: int
) -> None:
    found = store.audit_entries(after_seq=after_seq, limit=limit, entity_id=entity_id)
    assert [entry.seq for entry in found] == _expected(entity_id, after_seq, limit)


def _plan(store: SQLiteStore, sql: str, params: tuple[object, ...]) -> list[str]:
    with closing(sqlite3.connect(store.path)) as conn:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


@pytest.mark.parametrize("query", ["as-written", "negative-control"])
def test_a_runs_entries_are_looked_up_in_the_index(store: SQLiteStore, query: str) -> None:
    if query == "as-written":
        sql, params = audit_query(0, 10, "r1")
    else:
        sql, params = _BEFORE, (0, "r1", 3, "r1/", 10)
    with closing(sqlite3.connect(store.path)) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    reads = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert reads
    reads_the_log = any("audit_entity_id" not in step for step in reads)
    assert reads_the_log == (query == "negative-control"), plan
