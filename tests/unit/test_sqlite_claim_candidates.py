"""SQLite claims look runs up queue by queue and kind by kind, through indexes, instead of
one query that reads and sorts every claimable run. They must pick exactly what that one
query picks: the reference query below is the old implementation, kept as the oracle."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from surefoot.store.sqlite import SQLiteStore
from surefoot.store.sqlite.leases import LeasesMixin
from surefoot.store.sqlite.values import ts
from tests.contract.support import ACTOR, T0, new_run

QUEUES = ["default", "erp", "mail", "slow"]
WORKFLOWS = ["flow", "other", "third"]


def reference_candidates(
    cur: sqlite3.Cursor,
    now: datetime,
    workflows: Sequence[str],
    queues: Sequence[str] | None,
    limit: int,
    caps: dict[str, int],
    global_concurrency: Mapping[str, int],
) -> list[sqlite3.Row]:
    """The single-query implementation this store used before (the oracle)."""
    now_s = ts(now)
    if global_concurrency:
        running = dict(
            cur.execute(
                "SELECT queue, COUNT(*) FROM runs WHERE status IN ('running', 'compensating')"
                " AND lease_expires_at > ? GROUP BY queue",
                (now_s,),
            ).fetchall()
        )
        for name, allowed in global_concurrency.items():
            free = max(0, allowed - int(running.get(name, 0)))
            caps[name] = min(caps.get(name, free), free)
    base = [
        "SELECT * FROM runs WHERE (status = 'pending'",
        " OR (status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= ?)",
        " OR (status IN ('running', 'compensating') AND lease_expires_at <= ?))",
        f" AND workflow IN ({','.join('?' * len(workflows))})",
        " AND queue NOT IN (SELECT queue FROM queues WHERE paused = 1)",
        " AND (partition_key IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS earlier"
        " WHERE earlier.partition_key = runs.partition_key"
        " AND earlier.status NOT IN ('succeeded', 'failed', 'cancelled')"
        " AND (earlier.created_at < runs.created_at OR (earlier.created_at ="
        " runs.created_at AND earlier.run_id < runs.run_id))))",
    ]
    base_params: list[object] = [now_s, now_s, *workflows]
    order = " ORDER BY priority DESC, created_at LIMIT ?"
    wanted = list(queues) if queues else None
    found: list[sqlite3.Row] = []
    for name, cap in caps.items():
        if (wanted is not None and name not in wanted) or cap <= 0:
            continue
        found += cur.execute(
            "".join([*base, " AND queue = ?", order]), [*base_params, name, min(cap, limit)]
        ).fetchall()
    rest = [*base]
    params = [*base_params]
    if wanted is not None:
        rest.append(f" AND queue IN ({','.join('?' * len(wanted))})")
        params.extend(wanted)
    if caps:
        rest.append(f" AND queue NOT IN ({','.join('?' * len(caps))})")
        params.extend(caps)
    found += cur.execute("".join([*rest, order]), [*params, limit]).fetchall()
    found.sort(key=lambda r: (-r["priority"], r["created_at"]))
    return found[:limit]


def pending_only(
    cur: sqlite3.Cursor,
    now: datetime,
    workflows: Sequence[str],
    queues: Sequence[str] | None,
    limit: int,
    caps: dict[str, int],
    global_concurrency: Mapping[str, int],
) -> list[sqlite3.Row]:
    """A broken variant for the negative control: it forgets due waits and expired leases."""
    found = LeasesMixin._candidates_txn(cur, now, workflows, queues, limit, caps, {})
    return [r for r in found if r["status"] == "pending"]


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    """Runs of every claimable (and unclaimable) kind, in several queues and workflows,
    with priorities, partitions and a paused queue; creation times all distinct."""
    path = tmp_path / "claims.db"
    store = SQLiteStore(f"sqlite:///{path}")
    rng = random.Random(4)
    for i in range(400):
        partition = rng.choice([None, None, None, "p1", "p2", "p3"])
        new = new_run(
            rng.choice(WORKFLOWS),
            queue=rng.choice(QUEUES),
            priority=rng.choice([0, 0, 0, 1, 5]),
            partition_key=partition,
        )
        store.create_run(new, T0 + timedelta(milliseconds=i), ACTOR)
    store.close()
    with sqlite3.connect(path) as conn:
        run_ids = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY created_at")]
        for run_id in run_ids:
            kind = rng.choice(["pending"] * 4 + ["due", "later", "live", "expired", "done"])
            offset = timedelta(seconds=rng.choice([1, 30]))
            now = T0 + timedelta(seconds=60)
            if kind in ("due", "later"):
                wake = now - offset if kind == "due" else now + offset
                conn.execute(
                    "UPDATE runs SET status = 'waiting', wake_at = ? WHERE run_id = ?",
                    (ts(wake), run_id),
                )
            elif kind in ("live", "expired"):
                expires = now + offset if kind == "live" else now - offset
                conn.execute(
                    "UPDATE runs SET status = ?, lease_owner = 'gone', lease_expires_at = ?"
                    " WHERE run_id = ?",
                    (rng.choice(["running", "compensating"]), ts(expires), run_id),
                )
            elif kind == "done":
                conn.execute(
                    "UPDATE runs SET status = ? WHERE run_id = ?",
                    (rng.choice(["succeeded", "failed", "cancelled"]), run_id),
                )
        conn.execute("INSERT INTO queues (queue, paused) VALUES ('slow', 1)")
    return path


CASES: list[dict[str, object]] = [
    {"workflows": WORKFLOWS, "queues": None, "limit": 8, "caps": {}, "global": {}},
    {"workflows": WORKFLOWS, "queues": None, "limit": 500, "caps": {}, "global": {}},
    {"workflows": ["flow"], "queues": None, "limit": 1, "caps": {}, "global": {}},
    {"workflows": WORKFLOWS, "queues": ["erp", "slow"], "limit": 10, "caps": {}, "global": {}},
    {"workflows": WORKFLOWS, "queues": None, "limit": 20, "caps": {"erp": 2}, "global": {}},
    {"workflows": WORKFLOWS, "queues": None, "limit": 20, "caps": {"erp": 0}, "global": {}},
    {"workflows": WORKFLOWS, "queues": None, "limit": 30, "caps": {}, "global": {"mail": 3}},
    {
        "workflows": ["flow", "other"],
        "queues": ["default", "erp", "mail"],
        "limit": 50,
        "caps": {"default": 4, "mail": 100},
        "global": {"erp": 40},
    },
]


def candidates(path: Path, finder: object, case: dict[str, object]) -> list[str]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        found = finder(  # type: ignore[operator]
            conn.cursor(),
            T0 + timedelta(seconds=60),
            case["workflows"],
            case["queues"],
            case["limit"],
            dict(case["caps"]),  # type: ignore[call-overload]
            case["global"],
        )
    finally:
        conn.close()
    return [row["run_id"] for row in found]


@pytest.mark.parametrize("case", CASES)
def test_indexed_claim_lookups_pick_exactly_what_the_single_query_picked(populated, case):
    expected = candidates(populated, reference_candidates, case)
    assert expected, "the case must find something to compare"
    assert candidates(populated, LeasesMixin._candidates_txn, case) == expected


def test_negative_control_a_lookup_that_misses_a_kind_of_run_is_caught(populated):
    case = CASES[1]
    assert candidates(populated, pending_only, case) != candidates(
        populated, reference_candidates, case
    )
