"""Where one worker's time goes: cProfile of claim + execute on one store, all threads.

    python -m bench.profile [--store sqlite|postgres] [--n 500] [--top 25] [--no-profile]

N three-step runs are committed first by a separate client. Then this process claims and
executes them itself, one at a time in its main thread (no worker pool, no contention, no
polling), with cProfile on in every thread started from then on (the SQLite store commits
on the calling thread when nothing else is writing, so here in the main thread). Wall time
against CPU time tells whether a worker waits on the database or computes; the call counts
show how many transactions and statements each workflow costs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from bench.app import build
from bench.stores import DEFAULT_POSTGRES_URL, PostgresTarget, SQLiteTarget, Target
from surefoot.engine.execution import RunControl
from surefoot.engine.runner import execute
from surefoot.engine.runtime import utc_now

WORKER_ID = "bench-profile"
_thread_profiles: list[cProfile.Profile] = []


def _profile_this_thread(_frame: FrameType, _event: str, _arg: object) -> None:
    """Installed by ``threading.setprofile``: swaps itself for a cProfile of this thread."""
    sys.setprofile(None)
    profile = cProfile.Profile()
    _thread_profiles.append(profile)
    profile.enable()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--no-profile", action="store_true", help="time only (cProfile slows Python code down)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SUREFOOT_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    directory = Path(tempfile.mkdtemp(prefix="surefoot-profile-"))
    target: Target = (
        SQLiteTarget(directory) if args.store == "sqlite" else PostgresTarget(args.postgres_url)
    )
    profiler = cProfile.Profile()
    try:
        url = target.new_database()
        client = build(url)
        start = time.perf_counter()
        for value in range(args.n):
            client.start("three_steps", value)
        submit_s = time.perf_counter() - start
        client.close()

        if not args.no_profile:
            threading.setprofile(_profile_this_thread)
        app = build(url)
        store, rt = app.store, app.runtime
        store.register_worker(WORKER_ID, "bench", os.getpid(), [], utc_now())
        workflows = sorted(app.workflows)
        control = RunControl()
        done = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if not args.no_profile:
            profiler.enable()
        while done < args.n:
            claimed = store.claim(
                WORKER_ID, workflows=workflows, queues=None, limit=8, lease_s=60, now=utc_now()
            )
            for item in claimed:
                execute(rt, item, control)
            done += len(claimed)
            if not claimed:
                time.sleep(0.01)
        profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        app.close()
    finally:
        threading.setprofile(None)
        target.close()
        shutil.rmtree(directory, ignore_errors=True)

    print(f"python -m bench.profile {' '.join(argv)}")
    print(
        f"{args.store}: submitted {args.n} runs in {submit_s:.2f} s "
        f"({args.n / submit_s:,.0f}/s, one client, no worker running)"
    )
    print(
        f"executed them one at a time in {wall:.2f} s wall, {cpu:.2f} s CPU (all threads,"
        f" {100 * cpu / wall:.0f}% of one core): {args.n / wall:,.0f} workflows/s,"
        f" {3 * args.n / wall:,.0f} durable steps/s, {1000 * wall / args.n:.2f} ms and"
        f" {1000 * cpu / args.n:.2f} ms CPU per workflow"
    )
    if not args.no_profile:
        _print_profile(profiler, args.top)
    return 0


def _print_profile(profiler: cProfile.Profile, top: int) -> None:
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        for profile in _thread_profiles:
            stats.add(profile)
        stats.sort_stats(order).print_stats(top)
        print(f"\n--- all threads, top {top} by {order} ---")
        print(text.getvalue().split("\n\n", 2)[-1].replace(str(Path.cwd()) + "/", "").rstrip())


if __name__ == "__main__":
    sys.exit(main())
