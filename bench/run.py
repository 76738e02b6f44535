"""Surefoot's performance benchmark: prints Markdown tables with the command that made them.

    python -m bench.run [--store sqlite|postgres|both] [--n 2000] [--repeat 3]
                        [--workers 1,2,4] [--only ceiling,w1,unloaded,timers,recovery,memory]

The report goes to stdout, progress to stderr. See bench/README.md for what each
workload measures and how to read the ratios.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TypeVar

import psycopg

from bench import procs, report, workloads
from bench.report import median_of, num, spread, table, verdict
from bench.stores import (
    NOTES,
    PostgresTarget,
    SQLiteTarget,
    Target,
    add_postgres_url_argument,
)
from bench.workloads import Config
from surefoot import Settings
from surefoot.engine.starts import MAX_START_MANY
from surefoot.store.postgres.urls import redacted

T = TypeVar("T")
SECTIONS = ("ceiling", "w1", "unloaded", "timers", "recovery", "memory")
DEFAULT_POLL_S = Settings().poll_interval_s
FAST_POLL_S = 0.01
# Unloaded latency after a pause: long enough for an idle worker to stop looking often.
IDLE_S = 1.5

# The targets of the performance issue.
W1_STEPS_S = {"sqlite": 5_000.0, "postgres": 3_000.0}
UNLOADED_P50_MS = {"sqlite": 2.0, "postgres": 4.0}
RECOVERY_S = 1.0
MEMORY_GROWTH_MB = 20.0


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def repeated(what: str, repeat: int, measure: Callable[[], T]) -> list[T]:
    results = []
    for index in range(repeat):
        progress(f"{what}: run {index + 1} of {repeat}")
        results.append(measure())
    return results


# -- sections ---------------------------------------------------------------------------------
def ceiling_section(
    targets: list[Target], config: Config, w1_ceilings: dict[str, list[float]]
) -> str:
    rows = []
    for target in targets:
        values = w1_ceilings.get(target.kind) or repeated(  # measured by W1 if it ran
            f"{target.kind} commit ceiling",
            config.repeat,
            lambda t=target: workloads.ceiling(t, config),  # type: ignore[misc]
        )
        rows.append([target.kind, "1", num(statistics.median(values)), _join(values)])
        if target.kind == "postgres":
            parallel = repeated(
                "postgres commit ceiling, 8 connections",
                config.repeat,
                lambda t=target: workloads.ceiling(t, config, 8),  # type: ignore[misc]
            )
            rows.append(
                ["postgres", "8 (context only)", num(statistics.median(parallel)), _join(parallel)]
            )
    intro = (
        "One connection: measured right before each W1 run, next to that run's database.\n\n"
        if w1_ceilings
        else ""
    )
    return intro + table(["store", "connections", "commits/s (median)", "each run"], rows, left=2)


def _processes(count: int) -> str:
    return f"{count} worker process" + ("" if count == 1 else "es")


def _join(values: list[float]) -> str:
    return " / ".join(num(v) for v in values)


def w1_section(targets: list[Target], config: Config, ceilings: dict[str, list[float]]) -> str:
    rows = []
    for target in targets:
        counts = config.workers if target.kind == "postgres" else config.sqlite_workers
        single: list[float] = []
        for workers in counts:
            results = repeated(
                f"{target.kind} W1 with {_processes(workers)}, N={config.n_for(workers)}",
                config.repeat,
                lambda t=target, w=workers: workloads.w1(t, config, w),  # type: ignore[misc]
            )
            ceilings.setdefault(target.kind, []).extend(r.ceiling for r in results)
            steps = median_of(results, lambda r: r.steps_s)
            goal = W1_STEPS_S[target.kind]
            if workers == 1:
                single = [r.steps_s for r in results]
                target_text, ok = f">= {num(goal)}", steps >= goal
            else:
                # Rising means beyond the noise: every run above every one-worker run.
                target_text = "every run > every 1-worker run"
                ok = bool(single) and min(r.steps_s for r in results) > max(single)
            submits = median_of(results, lambda r: r.submitted_s)
            flows = median_of(results, lambda r: r.workflows_s)
            p50_s = median_of(results, lambda r: r.p50_ms) / 1000
            span_s = config.n_for(workers) / flows
            if not config.submit_first and flows >= 0.95 * submits and p50_s < 0.05 * span_s:
                # Runs finished as fast as they came and hardly queued: the client was slower.
                NOTES.append(
                    f"W1 on {target.kind} with {_processes(workers)}: the client committed"
                    f" {num(submits)} runs/s and {num(flows)} finished per second, with a p50 of"
                    f" {num(p50_s * 1000)} ms, so the one client, not the workers, set the pace"
                    " (`--submit-first` measures the workers alone)."
                )
            rows.append(
                [
                    target.kind,
                    f"{workers} x {config.concurrency}",
                    str(config.n_for(workers)),
                    num(median_of(results, lambda r: r.workflows_s)),
                    num(steps),
                    spread(results, lambda r: r.steps_s),
                    num(median_of(results, lambda r: r.p50_ms), 1),
                    num(median_of(results, lambda r: r.p99_ms), 1),
                    num(median_of(results, lambda r: r.ceiling)),
                    num(median_of(results, lambda r: r.ratio), 3),
                    num(median_of(results, lambda r: r.worker_cpu_pct)),
                    num(median_of(results, lambda r: r.submitted_s)),
                    str(sum(r.failed for r in results)),
                    target_text,
                    verdict(ok),
                ]
            )
    headers = [
        "store",
        "workers x concurrency",
        "N",
        "workflows/s",
        "durable steps/s",
        "steps/s each run",
        "p50 submit->complete ms",
        "p99 ms",
        "raw commits/s",
        "steps/s / commits/s",
        "worker CPU %",
        "client submits/s",
        "not succeeded",
        "target steps/s",
        "",
    ]
    return table(headers, rows, left=2)


def unloaded_section(targets: list[Target], config: Config) -> str:
    modes = [
        (f"worker process, poll {DEFAULT_POLL_S:g} s (default)", DEFAULT_POLL_S, False, 0.0),
        (f"worker process, poll {FAST_POLL_S:g} s", FAST_POLL_S, False, 0.0),
        ("worker thread in the client's process", None, True, 0.0),
        (
            f"worker process, default poll, each run {IDLE_S:g} s after the last",
            DEFAULT_POLL_S,
            False,
            IDLE_S,
        ),
    ]
    rows = []
    for target in targets:
        for label, poll_s, embedded, idle_s in modes:
            count = (
                config.unloaded_idle_n
                if idle_s
                else config.unloaded_default_poll_n
                if poll_s == DEFAULT_POLL_S
                else config.unloaded_n
            )
            if count <= 0:
                continue  # a setup asked to run no run (e.g. --unloaded-idle-n 0) is left out
            results = repeated(
                f"{target.kind} unloaded latency, {label}",
                config.repeat,
                lambda t=target, p=poll_s, e=embedded, c=count, i=idle_s: workloads.unloaded(  # type: ignore[misc]
                    t, config, poll_s=p, embedded=e, count=c, idle_s=i
                ),
            )
            p50 = median_of(results, lambda r: r.client_p50_ms)
            goal = UNLOADED_P50_MS[target.kind]
            rows.append(
                [
                    target.kind,
                    label,
                    f"{config.repeat} x {count}",
                    num(p50, 2),
                    num(median_of(results, lambda r: r.client_p99_ms), 2),
                    num(median_of(results, lambda r: r.store_p50_ms), 2),
                    num(median_of(results, lambda r: r.store_p99_ms), 2),
                    num(median_of(results, lambda r: r.client_cpu_ms), 2),
                    "in the client"
                    if embedded
                    else num(median_of(results, lambda r: r.worker_cpu_ms or 0.0), 2),
                    f"p50 <= {goal:g}",
                    verdict(p50 <= goal),
                ]
            )
    headers = [
        "store",
        "worker",
        "runs",
        "client p50 ms",
        "client p99 ms",
        "store p50 ms",
        "store p99 ms",
        "client CPU ms/run",
        "worker CPU ms/run",
        "target (client p50)",
        "",
    ]
    return table(headers, rows, left=2)


def timers_section(targets: list[Target], config: Config) -> str:
    modes = [
        (f"worker process, poll {DEFAULT_POLL_S:g} s (default)", False),
        ("worker thread in the client's process", True),
    ]
    rows = []
    for target in targets:
        for label, embedded in modes:
            results = repeated(
                f"{target.kind} timed wake-ups, {label}",
                config.repeat,
                lambda t=target, e=embedded: workloads.timers(  # type: ignore[misc]
                    t, config, embedded=e, count=config.timers_n
                ),
            )
            rows.append(
                [
                    target.kind,
                    label,
                    f"{config.repeat} x {config.timers_n}",
                    num(median_of(results, lambda r: r.late_p50_ms), 1),
                    num(median_of(results, lambda r: r.late_p99_ms), 1),
                    num(median_of(results, lambda r: r.late_max_ms), 1),
                    num(median_of(results, lambda r: r.store_late_p50_ms), 1),
                ]
            )
    headers = [
        "store",
        "worker",
        "runs",
        "late p50 ms (client)",
        "late p99 ms",
        "late max ms",
        "late p50 ms (store)",
    ]
    return table(headers, rows, left=2, targets=False)


def recovery_section(targets: list[Target], config: Config) -> str:
    rows = []
    for target in targets:
        results = repeated(
            f"{target.kind} recovery after kill -9",
            config.repeat,
            lambda t=target: workloads.recovery(t, config),  # type: ignore[misc]
        )
        complete = median_of(results, lambda r: r.complete_s)
        rows.append(
            [
                target.kind,
                str(config.recovery_runs),
                f"{config.recovery_lease_s:g} / {config.recovery_heartbeat_s:g}",
                num(median_of(results, lambda r: r.registered_s), 2),
                num(median_of(results, lambda r: r.leases_expired_s), 2),
                num(median_of(results, lambda r: r.taken_over_s), 2),
                num(complete, 2),
                spread(results, lambda r: r.complete_s, 2),
                str(sum(r.failed for r in results)),
                f"<= {RECOVERY_S:g} s",
                verdict(complete <= RECOVERY_S),
            ]
        )
    headers = [
        "store",
        "runs in flight",
        "lease / heartbeat s",
        "new worker registered s",
        "last lease expired s",
        "all taken over s",
        "all complete s",
        "each run",
        "not succeeded",
        "target (all complete)",
        "",
    ]
    return table(headers, rows, left=2)


def memory_section(targets: list[Target], config: Config) -> str:
    rows = []
    for target in targets:
        progress(f"{target.kind} memory with {config.memory_runs} runs in durable waits")
        result = workloads.memory(target, config)
        rows.append(
            [
                target.kind,
                str(result.runs),
                num(result.idle_mb, 1),
                num(result.after_mb, 1),
                num(result.growth_mb, 1),
                num(result.peak_mb, 1),
                num(result.seconds, 1),
                f"< +{MEMORY_GROWTH_MB:g} MB",
                verdict(result.growth_mb < MEMORY_GROWTH_MB),
            ]
        )
    headers = [
        "store",
        "runs waiting",
        "idle RSS MB",
        "RSS after MB",
        "growth MB",
        "peak RSS MB",
        "seconds to submit and park",
        "target (growth)",
        "",
    ]
    return table(headers, rows, left=2)


# -- the command ------------------------------------------------------------------------------
def _csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _n_by_workers(text: str) -> dict[int, int]:
    pairs = (part.split("=", 1) for part in text.split(",") if part.strip())
    return {int(k): int(v) for k, v in pairs}


# --steps: which workflow of bench/app.py W1 and the unloaded latency run.
STEP_WORKFLOWS = {"idempotent": "three_steps", "recorded": "three_recorded_steps"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--n", type=int, default=2000, help="W1 workflows per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--workers", type=_csv_ints, default=(1, 2, 4), help="PostgreSQL W1")
    parser.add_argument(
        "--sqlite-workers", type=_csv_ints, default=(1,), help="SQLite W1: worker processes"
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections: {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--concurrency", type=int, default=Settings().concurrency, help="runs per worker"
    )
    parser.add_argument(
        "--n-for-workers",
        type=_n_by_workers,
        default={},
        metavar="W=N,...",
        help="a smaller W1 N for some PostgreSQL worker counts, e.g. 4=1000",
    )
    parser.add_argument(
        "--submit-first",
        action="store_true",
        help="W1 variant: commit all N runs before the workers start (the workers alone)",
    )
    parser.add_argument(
        "--new-wal",
        action="store_true",
        help="SQLite: measure from a new database's first commit, within its WAL file's first"
        " fill (default: after it, see bench/README.md)",
    )
    parser.add_argument(
        "--start-many",
        type=int,
        default=0,
        metavar="N",
        help="W1 variant: the client commits runs with app.start_many, N per call"
        " (default 0: one app.start per run, the issue's W1)",
    )
    parser.add_argument(
        "--worker-log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        default="",
        help="W1: the worker processes' log_level (default: theirs, INFO)",
    )
    parser.add_argument(
        "--worker-log-each-run",
        action="store_true",
        help="W1: the worker processes log a line for each run that succeeds (log_each_run)",
    )
    parser.add_argument(
        "--steps",
        choices=tuple(STEP_WORKFLOWS),
        default="idempotent",
        help="W1 and unloaded: no-op steps declared idempotent (start committed with the end)"
        " or not (start committed before the step runs: two commits per step)",
    )
    parser.add_argument("--unloaded-n", type=int, default=200)
    parser.add_argument(
        "--unloaded-default-poll-n",
        type=int,
        default=50,
        help="unloaded latency: runs with the default poll interval",
    )
    parser.add_argument(
        "--unloaded-idle-n",
        type=int,
        default=10,
        help=f"runs started {IDLE_S:g} s after the last ended (the worker gone idle)",
    )
    parser.add_argument(
        "--timers-n", type=int, default=30, help="timed wake-ups: runs of a short sleep"
    )
    parser.add_argument("--recovery-runs", type=int, default=200)
    parser.add_argument("--recovery-lease-s", type=float, default=1.0)
    parser.add_argument("--recovery-heartbeat-s", type=float, default=0.2)
    parser.add_argument("--memory-runs", type=int, default=10_000)
    add_postgres_url_argument(parser)
    parser.add_argument("--temp-dir", type=Path, default=None, help="where SQLite files go")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) in --only: {', '.join(sorted(unknown))}")
    if not 0 <= args.start_many <= MAX_START_MANY:
        parser.error(f"--start-many takes 0 to {MAX_START_MANY}")
    return args


def _open_targets(kinds: list[str], directory: Path, postgres_url: str) -> list[Target] | None:
    targets: list[Target] = []
    for kind in kinds:
        if kind == "sqlite":
            targets.append(SQLiteTarget(directory))
            continue
        try:
            targets.append(PostgresTarget(postgres_url))
        except psycopg.OperationalError as exc:
            progress(
                f"cannot reach PostgreSQL at {redacted(postgres_url)}: {exc}"
                "; give --postgres-url, or run with --store sqlite"
            )
            return None
    return targets


def _title(section: str, config: Config) -> str:
    title = TITLES[section]
    if section == "w1" and config.submit_first:
        title = W1_SUBMIT_FIRST_TITLE
    if section == "w1" and config.start_many:
        title += W1_START_MANY_NOTE.format(n=config.start_many)
    if section == "w1" and config.worker_log_level:
        title += f"; workers logging at {config.worker_log_level}"
    if section == "w1" and config.worker_log_each_run:
        title += "; workers logging each run (log_each_run)"
    return title


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    only = [s for s in SECTIONS if s in args.only.split(",")]
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    directory = Path(tempfile.mkdtemp(prefix="surefoot-bench-", dir=args.temp_dir)).resolve()
    config = Config(
        n=args.n,
        repeat=args.repeat,
        workers=args.workers,
        concurrency=args.concurrency,
        directory=directory,
        n_by_workers=args.n_for_workers,
        unloaded_n=args.unloaded_n,
        unloaded_default_poll_n=args.unloaded_default_poll_n,
        unloaded_idle_n=args.unloaded_idle_n,
        recovery_runs=args.recovery_runs,
        memory_runs=args.memory_runs,
        submit_first=args.submit_first,
        fill_wal=not args.new_wal,
        start_many=args.start_many,
        worker_log_level=args.worker_log_level,
        worker_log_each_run=args.worker_log_each_run,
        recovery_lease_s=args.recovery_lease_s,
        recovery_heartbeat_s=args.recovery_heartbeat_s,
        workflow=STEP_WORKFLOWS[args.steps],
        sqlite_workers=args.sqlite_workers,
        timers_n=args.timers_n,
    )
    targets: list[Target] = []
    started = time.monotonic()
    failed = False
    out: list[str] = []
    try:
        opened = _open_targets(kinds, directory, args.postgres_url)
        if opened is None:
            return 2
        targets.extend(opened)
        store_rows = [row for t in targets for row in t.describe()]
        out += [
            "# Surefoot benchmark",
            "",
            "```",
            shlex.join(["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)]),
            "```",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Medians of {config.repeat} runs"
            f" unless noted; every run uses a new, empty database"
            + (
                " (SQLite measured within its WAL file's first fill)."
                if args.new_wal
                else " (SQLite measured past its WAL file's first fill: see bench/README.md)."
            ),
            "",
            report.machine(store_rows, directory),
            "",
        ]
        ceilings: dict[str, list[float]] = {}
        body: dict[str, str] = {}
        if "w1" in only:
            body["w1"] = w1_section(targets, config, ceilings)
        if "ceiling" in only:
            body["ceiling"] = ceiling_section(targets, config, ceilings)
        if "unloaded" in only:
            body["unloaded"] = unloaded_section(targets, config)
        if "timers" in only:
            body["timers"] = timers_section(targets, config)
        if "recovery" in only:
            body["recovery"] = recovery_section(targets, config)
        if "memory" in only:
            body["memory"] = memory_section(targets, config)
        for name in only:
            out += [_title(name, config), "", body[name], ""]
    except KeyboardInterrupt:
        failed = True
        progress("interrupted")
    except Exception as exc:
        failed = True
        progress(f"benchmark failed: {exc!r}")
        raise
    finally:
        procs.kill_all()
        for target in targets:
            target.close()
        shutil.rmtree(directory, ignore_errors=True)
    if NOTES:
        out += ["Notes:", "", *(f"- {note}" for note in NOTES), ""]
    out.append(f"Total time: {time.monotonic() - started:.0f} s.")
    print("\n".join(out))
    return 1 if failed else 0


TITLES = {
    "ceiling": "## Raw commit ceiling (one small INSERT per transaction, for "
    f"{Config.ceiling_s:g} s)",
    "w1": "## W1: N three-step no-op workflows submitted up front by one client",
    "unloaded": "## Unloaded latency: one three-step workflow at a time",
    "timers": "## Timed wake-ups: how late a durable sleep of"
    f" {workloads.NAP_S:g} s ends (one run at a time; a start, two claims and an end included)",
    "recovery": "## Recovery: runs in flight, kill -9 the worker, start a new one"
    " (seconds after the new worker was spawned)",
    "memory": "## Memory: a worker before and after runs parked in a durable sleep (one run)",
}
W1_SUBMIT_FIRST_TITLE = (
    "## W1, --submit-first: N runs committed before the workers start (the workers alone;"
    " not the issue's W1; latency includes the wait for the workers)"
)

W1_START_MANY_NOTE = (
    ", the client committing them with `start_many`, {n} runs per call (a variant: the"
    " issue's W1 starts each run on its own)"
)


if __name__ == "__main__":
    sys.exit(main())
