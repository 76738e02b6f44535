"""What a run costs a worker on a store with a history: finished runs of the same workflow.

    python -m bench.history [--store sqlite|postgres|both] [--finished 0,200000,1000000]
                            [--rate 200] [--seconds 10]

A store that has run for a year holds far more finished runs than live ones, and the
questions a busy worker keeps asking (what can I claim, when does the next run fall due)
must cost the same whatever it holds. For each history size: a new database whose ``runs``
table is first filled with that many succeeded runs of ``three_steps`` (written straight
into the store's schema: through the engine a million runs would take many minutes), then
one worker process serving that one workflow (``bench.app:single``), then one client
starting runs at a steady ``--rate`` for ``--seconds``. Prints the worker's CPU per run and
the p50 and p99 from start to end, then how long the console's overview and the newest page
of runs (with their count, as the console, the API and the CLI list them) take to compute
(medians of five, in this process, the worker idle), with the command that made the table.
Durable settings.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.app import build_single
from bench.procs import WorkerProcess, kill_all
from bench.stores import (
    PostgresTarget,
    Probe,
    SQLiteTarget,
    Target,
    add_postgres_url_argument,
    as_datetime,
)
from bench.workloads import percentile, wait_until
from surefoot.domain.records import RunFilter
from surefoot.ops import runs as run_ops
from surefoot.web.console.summary import overview

WORKFLOW = "three_steps"
CONCURRENCY = 128
# Finished long before the measured runs: their start times sort before any of them.
_HISTORY_SQLITE = (
    "INSERT INTO runs (run_id, workflow, queue, status, inputs_hash, inputs, output,"
    " correlation_id, created_at, updated_at, finished_at)"
    " WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
    " SELECT printf('%032x', i), ?, 'default', 'succeeded', 'h', '{\"value\": 1}', '1',"
    " printf('c%031x', i), t, t, t"
    " FROM (SELECT i, strftime('%Y-%m-%dT%H:%M:%f000+00:00', '2020-01-01', '+' || (i / 1000.0)"
    " || ' seconds') AS t FROM n)"
)
_HISTORY_POSTGRES = (
    "INSERT INTO runs (run_id, workflow, queue, status, inputs_hash, inputs, output,"
    " correlation_id, created_at, updated_at, finished_at)"
    " SELECT lpad(to_hex(i), 32, '0'), %s, 'default', 'succeeded', 'h', '{\"value\": 1}', '1',"
    " 'c' || lpad(to_hex(i), 31, '0'), t, t, t"
    " FROM (SELECT i, timestamptz '2020-01-01 00:00:00+00' + i * interval '1 ms' AS t"
    " FROM generate_series(1, %s) AS i) AS n"
)


@dataclass(frozen=True)
class Result:
    store: str
    finished: int
    runs: int
    cpu_per_run_ms: float
    p50_ms: float
    p99_ms: float
    overview_ms: float  # the console's overview page, computed as it serves it
    runs_page_ms: float  # the newest page of runs and their count (console, API, CLI)


def fill_history(target: Target, url: str, finished: int) -> None:
    """Write ``finished`` succeeded runs of :data:`WORKFLOW` into the (migrated) store."""
    if finished <= 0:
        return
    if isinstance(target, SQLiteTarget):
        with sqlite3.connect(target.path(url)) as conn:
            conn.execute(_HISTORY_SQLITE, (finished, WORKFLOW))
        return
    with psycopg.connect(url) as conn:
        conn.execute(_HISTORY_POSTGRES, (WORKFLOW, finished))
        conn.execute("ANALYZE runs")  # a store with a history has its statistics


def _unfinished(probe: Probe) -> int:
    rows = probe.query("SELECT COUNT(*) FROM runs WHERE status IN ('pending', 'running')")
    return int(rows[0][0])


def _times(probe: Probe, ids: list[str]) -> list[tuple[datetime, datetime]]:
    """Start and end of each run of ``ids`` (all ended)."""
    found: list[tuple[datetime, datetime]] = []
    for first in range(0, len(ids), 500):
        chunk = ids[first : first + 500]
        marks = ",".join("?" * len(chunk))
        rows = probe.query(
            f"SELECT created_at, finished_at FROM runs WHERE run_id IN ({marks})", chunk
        )
        found += [(as_datetime(r[0]), as_datetime(r[1])) for r in rows]
    return found


def measure(target: Target, directory: Path, finished: int, rate: float, seconds: float) -> Result:
    url = target.new_database()
    client = build_single(url)
    client.store  # noqa: B018 - creates the schema before the history and the worker
    fill_history(target, url, finished)
    probe = target.probe(url)
    log = directory / f"{target.kind}-history-{finished}-worker.log"
    worker = WorkerProcess(url, log, concurrency=CONCURRENCY, app_spec="bench.app:single")
    try:
        worker.start()
        wait_until(lambda: probe.worker_registered(worker.pid), 60, "the worker", [worker])
        count = int(rate * seconds)
        cpu_before = worker.cpu_s()
        begun = time.perf_counter()
        ids: list[str] = []
        for value in range(count):
            pause = begun + value / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ids.append(client.start(WORKFLOW, value).run_id)
        # Read through the status index: a count over the whole history, every 50 ms,
        # would take the processor from the worker being measured.
        wait_until(lambda: not _unfinished(probe), 300, "the runs", [worker])
        cpu = worker.cpu_s() - cpu_before
        times = _times(probe, ids)
        overview_ms = _median_ms(lambda: overview(client, datetime.now(UTC)))
        runs_page_ms = _median_ms(lambda: run_ops.list_runs(client, RunFilter()))
    finally:
        worker.stop()
        client.close()
        probe.close()
    latencies = [(end - start).total_seconds() * 1e3 for start, end in times]
    if len(latencies) != count:
        raise RuntimeError(f"{len(latencies)} of the {count} runs started were found ended")
    return Result(
        target.kind,
        finished,
        count,
        cpu / count * 1e3,
        statistics.median(latencies),
        percentile(latencies, 0.99),
        overview_ms,
        runs_page_ms,
    )


def _median_ms(read: Callable[[], object], times: int = 5) -> float:
    took = []
    for _ in range(times):
        begun = time.perf_counter()
        read()
        took.append(time.perf_counter() - begun)
    return statistics.median(took) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--finished", default="0,200000,1000000")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    add_postgres_url_argument(parser)
    args = parser.parse_args()
    sizes = [int(size) for size in args.finished.split(",")]
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="surefoot-bench-") as name:
        directory = Path(name)
        try:
            for store in stores:
                target: Target = (
                    PostgresTarget(args.postgres_url)
                    if store == "postgres"
                    else SQLiteTarget(directory)
                )
                try:
                    for size in sizes:
                        results.append(measure(target, directory, size, args.rate, args.seconds))
                        print(f"  {store}, {size:,} finished: done", flush=True)
                finally:
                    target.close()
        finally:
            kill_all()
    command = (
        f"python -m bench.history --store {args.store} --finished {args.finished}"
        f" --rate {args.rate:g} --seconds {args.seconds:g}"
    )
    print(f"\n```\n{command}\n```\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. One worker process ({CONCURRENCY} runs at"
        f" once) serving `{WORKFLOW}` alone; one client starting {args.rate:g} runs a second.\n"
    )
    print(
        "| store | finished runs already stored | runs started | worker CPU per run, ms"
        " | p50 start->end, ms | p99 ms | console overview, ms"
        " | newest page of runs and count, ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.store} | {r.finished:,} | {r.runs:,} | {r.cpu_per_run_ms:.2f}"
            f" | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.overview_ms:.1f} | {r.runs_page_ms:.1f} |"
        )


if __name__ == "__main__":
    main()
