"""The measurements: W1 throughput, unloaded latency, timed wake-ups, recovery after kill -9,
memory.

Each measurement gets a new, empty database, starts its own worker processes, and stops
them (or kills them) before it returns, whatever happens.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import surefoot as sf
from bench.app import NAP_S, build
from bench.procs import WorkerProcess
from bench.stores import Probe, Target

STEPS_PER_WORKFLOW = 3
# Unloaded latency and timed wake-ups: runs before the measured ones. A worker's first runs
# are slower (imports, its connections opening, a new server process's caches, statements
# not yet prepared): on PostgreSQL the first ten took 4.8-7.1 ms, the next ten 3.7-4.8, the third
# ten 3.3-3.8, then 2.9-3.8 (medians of each ten, a throwaway script); measured after them.
WARM_UP_RUNS = 30
# SQLite's WAL file grows until the store's first checkpoint (every 10,000 pages, about 40 MB,
# some 300 runs of three steps), then is written over from its beginning. A COMMIT that
# grows the file waited 210-260 us for its flush here, one that writes over it 130-150 us
# (one INSERT touching ten pages, a throwaway script): a store that has run a while is past
# its first checkpoint, a new database is not. Before measuring, W1 (unless the runs are
# committed before the workers start) and the latency sections run batches of WAL_WARM_BATCH
# runs of ``warm_up`` on SQLite until a batch leaves the WAL file no larger (it was written
# over), at most WAL_WARM_MAX_BATCHES.
WAL_WARM_BATCH = 500
WAL_WARM_MAX_BATCHES = 20


@dataclass(frozen=True)
class Config:
    n: int
    repeat: int
    workers: tuple[int, ...]
    concurrency: int
    directory: Path
    n_by_workers: dict[int, int]
    unloaded_n: int
    unloaded_default_poll_n: int
    recovery_runs: int
    memory_runs: int
    submit_first: bool = False  # W1 variant: commit all runs before the workers start
    fill_wal: bool = True  # SQLite: measure past the WAL file's first fill (see fill_wal)
    recovery_lease_s: float = 1.0
    recovery_heartbeat_s: float = 0.2
    ceiling_s: float = 2.0
    sqlite_workers: tuple[int, ...] = (1,)  # W1 on SQLite: worker processes
    workflow: str = "three_steps"  # W1 and unloaded: see bench/app.py and --steps
    unloaded_idle_n: int = 10  # unloaded, runs started after the worker went idle
    start_many: int = 0  # W1 variant: the client commits runs in batches of this many
    timers_n: int = 30  # timed wake-ups: runs of ``nap`` one at a time
    worker_log_level: str = ""  # W1: the worker processes' log_level ("": their default)
    worker_log_each_run: bool = False  # W1: the worker processes' log_each_run

    def n_for(self, workers: int) -> int:
        return self.n_by_workers.get(workers, self.n)


def small_config(directory: Path, **overrides: Any) -> Config:
    """A Config for tools and tests that run one section's pieces themselves: no section
    sized, one worker with the default concurrency (``overrides``: any other field)."""
    fields: dict[str, Any] = {
        "n": 0,
        "repeat": 1,
        "workers": (1,),
        "concurrency": 128,
        "directory": directory,
        "n_by_workers": {},
        "unloaded_n": 0,
        "unloaded_default_poll_n": 0,
        "recovery_runs": 0,
        "memory_runs": 0,
    }
    return Config(**{**fields, **overrides})


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (``q`` in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def wait_until(
    done: Callable[[], bool],
    timeout_s: float,
    what: str,
    workers: Sequence[WorkerProcess] = (),
    interval_s: float = 0.05,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        for worker in workers:
            worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


class Session:
    """One database, its client App and probe, and the workers started for it."""

    def __init__(self, target: Target, config: Config, label: str) -> None:
        self.target = target
        self.config = config
        self.label = label
        self.url = target.new_database()
        self.client = build(self.url)
        self.client.store  # noqa: B018 - creates the schema before any worker starts
        self.probe: Probe = target.probe(self.url)
        self.workers: list[WorkerProcess] = []

    def start_workers(
        self, count: int, concurrency: int, settings: dict[str, str] | None = None
    ) -> list[WorkerProcess]:
        started = []
        for _ in range(count):
            index = len(self.workers) + 1
            log = self.config.directory / f"{self.target.kind}-{self.label}-worker{index}.log"
            worker = WorkerProcess(self.url, log, concurrency=concurrency, settings=settings)
            self.workers.append(worker.start())
            started.append(worker)
        for worker in started:
            wait_until(
                lambda w=worker: self.probe.worker_registered(w.pid),  # type: ignore[misc]
                60,
                f"worker {worker.pid} to register",
                [worker],
            )
        return started

    def submit(self, workflow: str, count: int, batch: int = 0) -> float:
        """Start ``count`` runs from this one client, one ``start`` each or (``batch``)
        ``start_many`` of that many at a time; returns the seconds it took."""
        start = time.perf_counter()
        if batch:
            for first in range(0, count, batch):
                values = range(first, min(first + batch, count))
                self.client.start_many(workflow, [(value,) for value in values])
        else:
            for value in range(count):
                self.client.start(workflow, value)
        return time.perf_counter() - start

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.client.close()
        self.probe.close()


@contextmanager
def session(target: Target, config: Config, label: str) -> Iterator[Session]:
    opened = Session(target, config, label)
    try:
        yield opened
    finally:
        opened.close()


def fill_wal(s: Session) -> None:
    """On SQLite, batches of ``warm_up`` runs, each batch waited for, until the WAL file is
    written over rather than grown (see WAL_WARM_BATCH); the workers must be running.
    Nothing with ``--new-wal``."""
    wal = s.target.wal_file(s.url)
    if wal is None or not s.config.fill_wal:
        return
    size = -1
    for _ in range(WAL_WARM_MAX_BATCHES):
        batch = [(value,) for value in range(WAL_WARM_BATCH)]
        for handle in s.client.start_many("warm_up", batch):
            handle.result(timeout=120)
        if wal.stat().st_size == size:
            return
        size = wal.stat().st_size
    raise RuntimeError(
        f"{wal} still grew after {WAL_WARM_MAX_BATCHES} batches of {WAL_WARM_BATCH} runs"
    )


def warm_up(s: Session, workflow: str) -> None:
    """What the latency sections run before measuring: :func:`fill_wal`, then
    WARM_UP_RUNS runs of ``workflow`` one at a time, each waited for."""
    fill_wal(s)
    for value in range(WARM_UP_RUNS):
        s.client.start(workflow, value).result(timeout=30)


# -- W1: throughput ---------------------------------------------------------------------------
@dataclass(frozen=True)
class W1Result:
    workers: int
    n: int
    workflows_s: float
    steps_s: float
    p50_ms: float
    p99_ms: float
    submitted_s: float  # runs per second the client committed while the workers ran
    ceiling: float  # raw commits per second, measured just before, next to the database
    worker_cpu_pct: float  # CPU of all worker processes, % of one core, while busy
    failed: int

    @property
    def ratio(self) -> float:
        return self.steps_s / self.ceiling


def w1(target: Target, config: Config, workers: int) -> W1Result:
    n = config.n_for(workers)
    with session(target, config, f"w1-{workers}") as s:
        ceiling = target.commit_ceiling(s.url, config.ceiling_s)
        batch = config.start_many
        submit_s = s.submit(config.workflow, n, batch) if config.submit_first else 0.0
        logging: dict[str, str] = {}
        if config.worker_log_level:
            logging["log_level"] = config.worker_log_level
        if config.worker_log_each_run:
            logging["log_each_run"] = "true"
        procs = s.start_workers(workers, config.concurrency, logging or None)
        if not config.submit_first:
            fill_wal(s)
        cpu_before = [w.cpu_s() for w in procs]
        start = time.perf_counter()
        if not config.submit_first:
            submit_s = s.submit(config.workflow, n, batch)
        wait_until(
            lambda: s.probe.finished(config.workflow) >= n,
            max(120.0, n * 0.2),
            f"{n} W1 runs to finish",
            procs,
        )
        busy_s = time.perf_counter() - start
        cpu = sum(w.cpu_s() - c for w, c in zip(procs, cpu_before, strict=True))
        runs = s.probe.runs(config.workflow)
        first_worker = min(s.probe.worker_starts())
    done = [r for r in runs if r.status == "succeeded" and r.finished_at is not None]
    # From the first submission (or, with submit_first, the first worker's registration)
    # to the last run's end, as the store recorded them.
    began = first_worker if config.submit_first else min(r.created_at for r in runs)
    span = max(r.finished_at for r in done if r.finished_at) - began
    latencies = [
        (r.finished_at - r.created_at).total_seconds() * 1000 for r in done if r.finished_at
    ]
    workflows_s = len(done) / span.total_seconds()
    return W1Result(
        workers=workers,
        n=n,
        workflows_s=workflows_s,
        steps_s=workflows_s * STEPS_PER_WORKFLOW,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        submitted_s=n / submit_s,
        ceiling=ceiling,
        worker_cpu_pct=100 * cpu / busy_s,
        failed=len(runs) - len(done),
    )


def ceiling(target: Target, config: Config, connections: int = 1) -> float:
    with session(target, config, f"ceiling-{connections}") as s:
        return target.commit_ceiling(s.url, config.ceiling_s, connections)


# -- unloaded latency -------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyResult:
    samples: int
    client_p50_ms: float  # app.start() called -> handle.result() returned, in the client
    client_p99_ms: float
    store_p50_ms: float  # the run's created_at -> finished_at, as the store recorded them
    store_p99_ms: float
    # CPU per measured run (user + system, all threads): of the client's process (with the
    # worker in it, if embedded), and of the worker process (None if embedded)
    client_cpu_ms: float
    worker_cpu_ms: float | None


def unloaded(
    target: Target,
    config: Config,
    *,
    poll_s: float | None,
    embedded: bool,
    count: int,
    idle_s: float = 0.0,
) -> LatencyResult:
    """``count`` three-step workflows one at a time, each started once the previous ended
    (and, with ``idle_s``, that much later: the worker has gone idle in between)."""
    label = "embedded" if embedded else f"poll-{poll_s or 'default'}"
    with session(target, config, f"unloaded-{label}") as s:
        settings = {} if poll_s is None else {"poll_interval_s": str(poll_s)}
        worker = _one_worker(s, config, embedded=embedded, settings=settings)
        try:
            warm_up(s, config.workflow)
            measured: list[str] = []
            client_ms: list[float] = []
            client_cpu, worker_cpu = time.process_time(), [w.cpu_s() for w in s.workers]
            for value in range(count):
                time.sleep(idle_s)
                start = time.perf_counter()
                handle = s.client.start(config.workflow, value)
                handle.result(timeout=30)
                client_ms.append((time.perf_counter() - start) * 1000)
                measured.append(handle.run_id)
            client_cpu = time.process_time() - client_cpu
            worker_cpu = [w.cpu_s() - c for w, c in zip(s.workers, worker_cpu, strict=True)]
        finally:
            if worker is not None:
                worker.stop(15)
        wanted = set(measured)
        store_ms = [
            (r.finished_at - r.created_at).total_seconds() * 1000
            for r in s.probe.runs(config.workflow)
            if r.run_id in wanted and r.finished_at is not None
        ]
    return LatencyResult(
        samples=count,
        client_p50_ms=percentile(client_ms, 0.50),
        client_p99_ms=percentile(client_ms, 0.99),
        store_p50_ms=percentile(store_ms, 0.50),
        store_p99_ms=percentile(store_ms, 0.99),
        client_cpu_ms=1000 * client_cpu / count,
        worker_cpu_ms=None if embedded else 1000 * sum(worker_cpu) / count,
    )


def _one_worker(
    s: Session, config: Config, *, embedded: bool, settings: dict[str, str]
) -> sf.Worker | None:
    """One worker, registered: a thread of the client's process (returned, for the caller to
    stop), or a worker process with ``settings`` (stopped with the session)."""
    if not embedded:
        s.start_workers(1, config.concurrency, settings)
        return None
    worker = sf.Worker(s.client, concurrency=config.concurrency).start()
    wait_until(lambda: bool(s.probe.query("SELECT 1 FROM workers")), 30, "the worker")
    return worker


# -- timed wake-ups ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TimerResult:
    samples: int
    late_p50_ms: float  # app.start() called -> handle.result() returned, minus the nap
    late_p99_ms: float
    late_max_ms: float
    store_late_p50_ms: float  # the run's created_at -> finished_at, minus the nap


def timers(target: Target, config: Config, *, embedded: bool, count: int) -> TimerResult:
    """``count`` runs of ``nap`` (a durable sleep of NAP_S, then one no-op step) one at a
    time, each started once the previous ended, with the default poll interval: how late
    each ends after its sleep (the start, the claims and the end included)."""
    label = "embedded" if embedded else "process"
    with session(target, config, f"timers-{label}") as s:
        worker = _one_worker(s, config, embedded=embedded, settings={})
        try:
            warm_up(s, "nap")
            measured: list[str] = []
            late_ms: list[float] = []
            for value in range(count):
                start = time.perf_counter()
                handle = s.client.start("nap", value)
                handle.result(timeout=30)
                late_ms.append((time.perf_counter() - start - NAP_S) * 1000)
                measured.append(handle.run_id)
        finally:
            if worker is not None:
                worker.stop(15)
        wanted = set(measured)
        store_ms = [
            ((r.finished_at - r.created_at).total_seconds() - NAP_S) * 1000
            for r in s.probe.runs("nap")
            if r.run_id in wanted and r.finished_at is not None
        ]
    return TimerResult(
        samples=count,
        late_p50_ms=percentile(late_ms, 0.50),
        late_p99_ms=percentile(late_ms, 0.99),
        late_max_ms=max(late_ms),
        store_late_p50_ms=percentile(store_ms, 0.50),
    )


# -- recovery after kill -9 -------------------------------------------------------------------
@dataclass(frozen=True)
class RecoveryResult:
    runs: int
    registered_s: float  # the new worker registered, after it was spawned
    leases_expired_s: float  # the killed worker's last lease ran out, after the spawn
    taken_over_s: float  # the last interrupted attempt was recorded, after the spawn
    complete_s: float  # the last run finished, after the spawn
    failed: int


def recovery(target: Target, config: Config) -> RecoveryResult:
    runs = config.recovery_runs
    short_lease = {
        "lease_s": str(config.recovery_lease_s),
        "heartbeat_s": str(config.recovery_heartbeat_s),
    }
    # The worker to be killed writes the idempotent held step's start before it runs, so
    # the benchmark can see every run inside it, and the takeover leaves an interrupted
    # attempt to time. The new worker runs with the default settings.
    recording = {**short_lease, "record_idempotent_starts": "true"}
    with session(target, config, "recovery") as s:
        (first,) = s.start_workers(1, runs, recording)
        s.submit("held", runs)
        wait_until(
            lambda: len(s.probe.attempt_times("bench.hold", "running")) >= runs,
            120,
            f"{runs} runs to be inside the held step",
            [first],
        )
        first.kill9()
        expiries = s.probe.lease_expiries("held")
        second = WorkerProcess(
            s.url,
            config.directory / f"{target.kind}-recovery-worker2.log",
            concurrency=runs,
            settings=short_lease,
        )
        s.workers.append(second.start())
        spawned = datetime.fromtimestamp(second.started_at, UTC)
        wait_until(
            lambda: s.probe.worker_registered(second.pid), 60, "the new worker", [second], 0.005
        )
        registered_s = time.time() - second.started_at
        wait_until(
            lambda: s.probe.finished("held") >= runs, 120, "the held runs to finish", [second]
        )
        finished = s.probe.runs("held")
        interrupted = s.probe.attempt_times("bench.hold", "interrupted")
    ends = [r.finished_at for r in finished if r.finished_at is not None]

    def after_spawn(moments: list[datetime]) -> float:
        return (max(moments) - spawned).total_seconds() if moments else float("nan")

    return RecoveryResult(
        runs=runs,
        registered_s=registered_s,
        leases_expired_s=after_spawn(expiries),
        taken_over_s=after_spawn(interrupted),
        complete_s=after_spawn(ends),
        failed=sum(1 for r in finished if r.status != "succeeded"),
    )


# -- memory of durable waits ------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryResult:
    runs: int
    idle_mb: float
    after_mb: float
    peak_mb: float
    seconds: float  # submitting the runs until all of them were waiting

    @property
    def growth_mb(self) -> float:
        return self.after_mb - self.idle_mb


def _settled_rss(worker: WorkerProcess) -> float:
    time.sleep(2.0)
    readings = []
    for _ in range(5):
        readings.append(worker.rss_mb())
        time.sleep(0.2)
    return statistics.median(readings)


def memory(target: Target, config: Config) -> MemoryResult:
    runs = config.memory_runs
    with session(target, config, "memory") as s:
        (worker,) = s.start_workers(1, config.concurrency)
        idle = _settled_rss(worker)
        start = time.perf_counter()
        s.submit("sleeper", runs)
        wait_until(
            lambda: s.probe.count("sleeper", ("waiting",)) >= runs,
            max(300.0, runs * 0.1),
            f"{runs} runs to wait durably",
            [worker],
            0.5,
        )
        seconds = time.perf_counter() - start
        after = _settled_rss(worker)
        peak = worker.peak_rss_mb()
    return MemoryResult(runs, idle, after, peak, seconds)
