"""A PostgreSQL claim reads the runs it takes, not the whole backlog nor every run being
executed.

The claim asks for the first pending runs in claim order (priority, then age) through the
``runs_pending`` index and stops there; the query once read and sorted every claimable
run at each claim. The test reads PostgreSQL's own count of the rows each scan of
``runs`` returned or filtered out while the claim's statement found its runs (the lease
update then looks each up again by id: not counted), over a backlog of 2,000 pending
runs; the negative control runs the same statement without the index, and the same
check must catch it. The store's
connections never compile a statement (JIT): sorting off makes a claim look costly enough
to set it off, a second of compiling for a statement of a millisecond.

A claim also looks for runs whose lease has run out: through ``runs_leased`` (schema 8) it
reads only those, where it once read every run that any worker was executing. The second
pair of tests claims with 1,000 runs held under live leases by another worker; its
negative control claims without the index.
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
HELD = 1_000
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
    """Rows that the plan's scans of ``runs`` read to find the runs to claim, over all
    loops: those a scan returned and those its filter removed. Neither the partition
    check's look at earlier runs (``earlier``) nor the lease update's look-up of the runs
    found, by id, is the finding."""
    node = plan
    if node["Node Type"] == "ModifyTable":
        return 0
    alias = str(node.get("Alias", ""))
    own = node.get("Relation Name") == "runs" and not alias.startswith("earlier")
    seen = int(node["Actual Rows"]) + int(node.get("Rows Removed by Filter", 0))
    read = seen * int(node["Actual Loops"]) if own else 0
    return read + sum(rows_read(child) for child in node.get("Plans", []))


def claim_reads(url: str, *, without_index: str | None) -> tuple[int, list[str]]:
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
        if without_index is not None:
            conn.execute(f"DROP INDEX {without_index}")
        explained = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()
        assert explained is not None
        plan = explained[0] if isinstance(explained[0], list) else json.loads(explained[0])
        found = conn.execute(sql, params).fetchall()
        conn.rollback()
    return rows_read(plan[0]["Plan"]), [row[0] for row in found]


@pytest.fixture
def held(postgres_url: str) -> str:
    """``HELD`` runs executing under another worker's live leases, and pending runs for two
    claims (``claim_reads`` explains a claim, which takes its runs, then claims again)."""
    store = PostgresStore(postgres_url)
    try:
        store.create_runs(
            [NewRun(uuid.uuid4().hex, "flow", "default", "[]", "h") for _ in range(HELD)],
            NOW,
            "test",
        )
        taken = store.claim(
            "other", workflows=["flow"], queues=None, limit=HELD, lease_s=3600, now=NOW
        )
        assert len(taken) == HELD
        store.create_runs(
            [NewRun(uuid.uuid4().hex, "flow", "default", "[]", "h") for _ in range(2 * LIMIT)],
            NOW,
            "test",
        )
    finally:
        store.close()
    return postgres_url


# What the claim reads behind: the backlog of pending runs, or the runs held by another
# worker; as written, and as the negative control without the index that spares it them
# (which must read every one).
CASES = [
    pytest.param("backlog", None, id="backlog"),
    pytest.param("backlog", "runs_pending", id="negative-control-backlog-without-runs_pending"),
    pytest.param("held", None, id="held"),
    pytest.param("held", "runs_leased", id="negative-control-held-without-runs_leased"),
]


@pytest.mark.parametrize(("behind", "dropped"), CASES)
def test_a_claim_reads_the_runs_it_takes_not_the_backlog_nor_the_runs_held(
    request: pytest.FixtureRequest, behind: str, dropped: str | None
):
    read, found = claim_reads(request.getfixturevalue(behind), without_index=dropped)
    assert len(found) == LIMIT
    # A few more than it takes may be found and left.
    reads_few = read <= 2 * LIMIT
    assert reads_few == (dropped is None), f"the claim read {read} rows of runs to take {LIMIT}"
    if dropped is not None:
        assert read >= {"backlog": BACKLOG, "held": HELD}[behind]


def test_the_stores_connections_never_compile_statements(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        for _ in range(3):  # whichever pooled connection answers
            assert store._read_row("SHOW jit", None) == {"jit": "off"}
    finally:
        store.close()
