"""How long one claim takes behind a backlog of pending runs, on PostgreSQL.

    python -m bench.claim_backlog [--backlogs 2000,20000,100000] [--claims 7] [--limit 128]

For each backlog size: a new database, that many pending runs committed in batches, then
``--claims`` claims of ``--limit`` runs each, one after another, through the store (each
leases its runs and commits, as a worker's claim does). Prints a Markdown table of the
median and slowest claim with the command that made it. A claim should cost about the
same whatever the backlog: it reads the runs it takes, not the ones waiting behind them.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime

from bench.run import progress
from bench.stores import PostgresTarget, add_postgres_url_argument
from surefoot.domain.records import NewRun
from surefoot.store.postgres import PostgresStore

BATCH = 5_000  # runs committed per transaction while filling the backlog


def _csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def measure(target: PostgresTarget, backlog: int, claims: int, limit: int) -> list[float]:
    """Seconds each of ``claims`` claims took, behind ``backlog`` pending runs."""
    store = PostgresStore(target.new_database())
    try:
        now = datetime.now(UTC)
        for first in range(0, backlog, BATCH):
            count = min(BATCH, backlog - first)
            news = [NewRun(uuid.uuid4().hex, "flow", "default", "[]", "h") for _ in range(count)]
            store.create_runs(news, now, "bench")
            progress(f"backlog {backlog:,}: {first + count:,} runs committed")
        took = []
        for _ in range(claims):
            start = time.perf_counter()
            claimed = store.claim(
                "bench-claims",
                workflows=["flow"],
                queues=None,
                limit=limit,
                lease_s=300,
                now=datetime.now(UTC),
            )
            took.append(time.perf_counter() - start)
            if len(claimed) != limit:
                raise RuntimeError(f"a claim took {len(claimed)} runs, not {limit}")
        return took
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlogs", type=_csv_ints, default=(2_000, 20_000, 100_000))
    parser.add_argument("--claims", type=int, default=7)
    parser.add_argument("--limit", type=int, default=128)
    add_postgres_url_argument(parser)
    args = parser.parse_args()
    target = PostgresTarget(args.postgres_url)
    rows = []
    try:
        for backlog in args.backlogs:
            took = measure(target, backlog, args.claims, args.limit)
            rows.append(
                f"| {backlog:,} | {args.limit} | {args.claims} |"
                f" {statistics.median(took) * 1000:,.2f} | {max(took) * 1000:,.2f} |"
            )
    finally:
        target.close()
    command = "python -m bench.claim_backlog " + " ".join(
        [
            f"--backlogs {','.join(str(b) for b in args.backlogs)}",
            f"--claims {args.claims}",
            f"--limit {args.limit}",
        ]
    )
    print(f"```\n{command}\n```\n")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. PostgreSQL, one claim at a time.\n")
    print("| pending runs | runs per claim | claims | median ms | slowest ms |")
    print("|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
