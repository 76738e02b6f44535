"""Where one unloaded run's time goes, phase by phase, and what an idle gap before it changes.

    python -m bench.phases [--store sqlite|postgres] [--idle 0,0.02,1.5] [--runs 100]

For each idle gap: a new database, one worker process with the default settings, the
latency sections' warm-up (on SQLite past the WAL file's first fill, then 30 runs), then
``--runs`` runs of ``three_steps`` one at a time, each started that many seconds after the
last one's result came back. Each run is cut into phases by the client's clock and the
store's own timestamps (client, worker and database on one host, one clock):

- *client before its write*: ``app.start()`` called to the run's ``created_at`` (the
  client's Python: encoding, ids, the span);
- *the start's commit*: ``created_at`` to ``app.start()`` returning (its statements and its
  flushed ``COMMIT``);
- *wake and claim*: the start returned to the first step's ``started_at`` (the worker
  noticing the run, claiming it, handing it to a thread);
- *three steps*: to the last step's ``finished_at`` (no-op steps, held for the run's end);
- *end and result*: to ``handle.result()`` returning (the run's end with its flushed
  ``COMMIT``, the client noticing it and reading the run).

Prints a Markdown table of the medians, with the command that made it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.stores import PostgresTarget, SQLiteTarget, Target, add_postgres_url_argument
from bench.workloads import Session, session, small_config, warm_up

PHASES = (
    "client before its write",
    "the start's commit",
    "wake and claim",
    "three steps",
    "end and result",
)


def _stamp(value: object) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.timestamp()


def _gaps(text: str) -> list[float]:
    """``--idle``: seconds, comma-separated, none negative."""
    try:
        gaps = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not seconds separated by commas: {text!r}") from None
    if any(gap < 0 for gap in gaps):
        raise argparse.ArgumentTypeError(f"an idle gap cannot be negative: {text!r}")
    return gaps


def _runs(text: str) -> int:
    """``--runs``: a whole number, at least 1."""
    try:
        runs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if runs < 1:
        raise argparse.ArgumentTypeError(f"at least one run, not {runs}")
    return runs


def measure(s: Session, runs: int, idle_s: float) -> list[list[float]]:
    """Per run, the seconds of each phase and the whole, in PHASES order."""
    marks: list[tuple[str, float, float, float]] = []
    for value in range(runs):
        time.sleep(idle_s)
        called = time.time()
        handle = s.client.start("three_steps", value)
        returned = time.time()
        handle.result(timeout=30)
        marks.append((handle.run_id, called, returned, time.time()))
    rows = []
    for run_id, called, returned, done in marks:
        created = _stamp(
            s.probe.query("SELECT created_at FROM runs WHERE run_id = ?", (run_id,))[0][0]
        )
        first, last = s.probe.query(
            "SELECT MIN(started_at), MAX(finished_at) FROM attempts WHERE run_id = ?", (run_id,)
        )[0]
        first_s, last_s = _stamp(first), _stamp(last)
        rows.append(
            [
                created - called,
                returned - created,
                first_s - returned,
                last_s - first_s,
                done - last_s,
                done - called,
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m bench.phases", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--idle", type=_gaps, default="0,0.02,1.5", help="seconds before each run, one row each"
    )
    parser.add_argument("--runs", type=_runs, default=100)
    add_postgres_url_argument(parser)
    args = parser.parse_args(argv)
    gaps: list[float] = args.idle
    directory = Path(tempfile.mkdtemp(prefix="surefoot-phases-"))
    target: Target = (
        SQLiteTarget(directory) if args.store == "sqlite" else PostgresTarget(args.postgres_url)
    )
    config = small_config(directory)
    lines = [
        f"python -m bench.phases {' '.join(argv)}".rstrip(),
        "",
        f"| {args.store}, idle before each run | runs | "
        + " | ".join(f"{name} ms" for name in PHASES)
        + " | client p50 ms |",
        "|---|---:|" + "---:|" * (len(PHASES) + 1),
    ]
    try:
        for gap in gaps:
            print(f"idle {gap:g} s: {args.runs} runs ...", file=sys.stderr, flush=True)
            with session(target, config, f"phases-{gap:g}") as s:
                s.start_workers(1, config.concurrency)
                warm_up(s, "three_steps")
                rows = measure(s, args.runs, gap)
            medians = [1000 * statistics.median(column) for column in zip(*rows, strict=True)]
            lines.append(
                f"| {gap:g} s | {len(rows)} | " + " | ".join(f"{m:.2f}" for m in medians) + " |"
            )
            print(f"idle {gap:g} s: done", file=sys.stderr, flush=True)
    finally:
        target.close()
        shutil.rmtree(directory, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
