"""A PostgreSQL claim reads the runs it takes, not the whole backlog.

The claim asks for the first pending runs in claim order (priority, then age) through the
``runs_pending`` index and stops there; the query once read and sorted every claimable
run at each claim. The test reads PostgreSQL's own count of the rows each scan of
``runs`` returned while running the claim's statement (which also leases the runs it
takes, looking each up again) over a backlog of 2,000 pending runs; the negative control
runs the same statement without the index, and the same check must catch it. The store's
connections never compile a statement (JIT): sorting off makes a claim look costly enough
to set it off, a second of compiling for a statement of a millisecond.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from surefoot.domain.records import NewRun
from surefoot.store.postgres import PostgresStore, claims
from tests import postgres_support

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

BACKLOG = 2_000
LIMIT = 64
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def backlog(postgres_url: str) -> str:
    store = PostgresStore(postgres_url)
    try:
        news = [
            NewRun(uuid.uuid4().hex, "flow", "default", "[]", "h", priority=i % 3)
            for i in range(BACKLOG)
        ]
        store.create_runs(news, NOW, "test")
    finally:
        store.close()
    return postgres_url  # not analyzed: statistics lag behind a burst of starts


def rows_read(plan: dict[str, Any]) -> int:
    """Rows that the plan's scans of the claim's own ``runs`` returned, over all loops (the
    partition check's look at earlier runs, ``earlier``, is not the claim's reading)."""
    node = plan
    alias = str(node.get("Alias", ""))
    own = node.get("Relation Name") == "runs" and not alias.startswith("earlier")
    read = int(node["Actual Rows"]) * int(node["Actual Loops"]) if own else 0
    return read + sum(rows_read(child) for child in node.get("Plans", []))


def claim_reads(url: str, *, without_index: bool) -> tuple[int, list[str]]:
    """The rows the claim statement read, and the runs it found (in claim order)."""
    sql, limits = claims.statement([claims.Group("".join(claims.CLAIM_FILTERS), LIMIT)])
    params = {
        "now": NOW,
        "workflows": ["flow"],
        "limit": LIMIT,
        "worker": "w",
        "expires": datetime(2030, 1, 1, 13, 0, tzinfo=UTC),
        **limits,
    }
    with psycopg.connect(url) as conn:  # one transaction, rolled back: the locks go too
        conn.execute("SET jit = off")  # as every connection of the store has it
        for name, value in claims.CLAIM_SETTINGS:  # as the claim sends it
            conn.execute(f"SET LOCAL {name} = {value}")
        if without_index:
            conn.execute("DROP INDEX runs_pending")
        explained = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()
        assert explained is not None
        plan = explained[0] if isinstance(explained[0], list) else json.loads(explained[0])
        found = conn.execute(sql, params).fetchall()
        conn.rollback()
    return rows_read(plan[0]["Plan"]), [row[0] for row in found]


def test_a_claim_reads_the_runs_it_takes_not_the_backlog(backlog: str):
    read, found = claim_reads(backlog, without_index=False)
    assert len(found) == LIMIT
    # Each run taken is read twice, found and leased; a few more may be found and left.
    assert read <= 3 * LIMIT, f"the claim read {read} rows of runs to take {LIMIT}"


def test_negative_control_without_the_index_the_claim_reads_the_backlog(backlog: str):
    read, found = claim_reads(backlog, without_index=True)
    assert len(found) == LIMIT
    assert read > 3 * LIMIT  # the check above catches a claim that reads them all
    assert read >= BACKLOG


def test_the_stores_connections_never_compile_statements(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        for _ in range(3):  # whichever pooled connection answers
            assert store._read_row("SHOW jit", None) == {"jit": "off"}
    finally:
        store.close()
