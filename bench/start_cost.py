"""What one `app.start` costs its client: CPU and time per start, no worker running.

    python -m bench.start_cost [--store postgres] [--blocks 10] [--starts 200]

A new database, 300 unmeasured starts, then ``--blocks`` blocks of ``--starts`` starts of
the benchmark's ``three_steps``, one after another from one thread (each returns once its
run is committed). Prints a Markdown table of the medians over the blocks, per start: the
thread's CPU time (user and system) and the elapsed time, with the command that made it.
In the issue's W1 (a ``start`` per run) the one client sets the pace: its CPU per start
bounds how many runs a second any number of workers can finish. CPU time is steadier than
elapsed time on a machine whose speed varies; compare two versions of the code by
alternating runs of this command.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.app import build
from bench.stores import PostgresTarget, SQLiteTarget, Target, add_postgres_url_argument

WARM_UP_STARTS = 300


def measure(target: Target, blocks: int, starts: int) -> tuple[list[float], list[float]]:
    """Per block: CPU seconds and elapsed seconds per start."""
    app = build(target.new_database())
    try:
        for value in range(WARM_UP_STARTS):
            app.start("three_steps", value)
        cpu, elapsed = [], []
        for _ in range(blocks):
            cpu_at, wall_at = time.thread_time(), time.perf_counter()
            for value in range(starts):
                app.start("three_steps", value)
            cpu.append((time.thread_time() - cpu_at) / starts)
            elapsed.append((time.perf_counter() - wall_at) / starts)
        return cpu, elapsed
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--starts", type=int, default=200)
    add_postgres_url_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="surefoot-bench-") as directory:
        target: Target = (
            PostgresTarget(args.postgres_url)
            if args.store == "postgres"
            else SQLiteTarget(Path(directory))
        )
        try:
            cpu, elapsed = measure(target, args.blocks, args.starts)
        finally:
            target.close()
    command = (
        f"python -m bench.start_cost --store {args.store} --blocks {args.blocks}"
        f" --starts {args.starts}"
    )
    print(f"```\n{command}\n```\n")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. One client thread, no worker.\n")
    print("| store | starts | CPU per start, us (median; each block) | elapsed per start, us |")
    print("|---|---:|---|---:|")
    each = " / ".join(f"{c * 1e6:,.0f}" for c in cpu)
    print(
        f"| {args.store} | {args.blocks} x {args.starts} |"
        f" {statistics.median(cpu) * 1e6:,.0f} ({each}) | {statistics.median(elapsed) * 1e6:,.0f} |"
    )


if __name__ == "__main__":
    main()
