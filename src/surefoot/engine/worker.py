"""The worker: claims runs with a lease, executes them, renews leases, drains on SIGTERM.

Leases: a claim sets ``lease_owner`` and bumps ``lease_epoch``; every write of
the execution is fenced by both. A heartbeat thread renews the leases of the
runs this worker holds. If a worker dies, its leases expire and any other
worker takes the runs over; the dead worker's unfinished attempts are then
recorded as ``interrupted``.

Dead workers on this host: a worker records what identifies its process (host,
kernel boot, pid namespace, pid, start time). At start and with its heartbeats,
a worker looks at the other workers registered with its own host, boot and pid
namespace; one whose process provably no longer exists (no process has its pid,
or the pid now belongs to a process started at another time) is declared dead,
and its runs are taken over at once instead of after their leases expire. When
in doubt (``/proc`` unreadable, another machine, another namespace) a worker is
alive, and only lease expiry frees its runs.

Drain: on SIGTERM the worker stops claiming, lets each run reach its next step
boundary (where it is handed back, committed work intact), waits up to
``drain_timeout_s``, then releases whatever is still inside a step, recording
those attempts as interrupted. It never walks away from a leased run silently.

Waking up: a commit that makes a run claimable wakes the worker (see the stores'
``subscribe``); what becomes claimable by time alone (a durable wait falling due, a
dead worker's lease expiring) announces itself to nobody. A worker with room for more
that found nothing more to claim asks the store when the next such moment is
(``next_due``, at most every ``DUE_LOOK_S``) and sleeps until then if it comes before
its next poll, so a sleep ends and a dead worker's runs are taken over on time, not up
to ``poll_interval_s`` late. A worker whose claims keep finding that other workers took
what it was told of waits a little before claiming again (``claim_pace``).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

from surefoot.domain.records import Lease, RunRecord
from surefoot.domain.status import RunStatus
from surefoot.engine.app import App
from surefoot.engine.claim_pace import ClaimPace
from surefoot.engine.execution import RunControl
from surefoot.engine.runner import execute
from surefoot.engine.runtime import Runtime, utc_now
from surefoot.errors import LeaseLostError, StoreError
from surefoot.observability import instrument
from surefoot.store.base import ClaimedRun

log = logging.getLogger("surefoot.worker")

# A worker checks for dead workers on its host at start, then with its heartbeats but at
# most this often.
DEAD_WORKER_CHECK_S = 1.0
# A worker waiting for work asks the store when the next run falls due at most this often.
DUE_LOOK_S = 0.05
# A worker that ended runs logs how many at most this often (at INFO; see ``_summarize``).
SUMMARY_S = 60.0
_PROC = Path("/proc")


@dataclass(frozen=True)
class HostProcess:
    """What identifies a process for as long as it lives: its host, the kernel's boot, its
    namespaces, its pid and its start time (clock ticks after boot)."""

    hostname: str
    boot_id: str
    namespace: str  # the pid namespace, and the time namespace where there are some
    pid: int
    started: int


def _stat(pid: int | str) -> tuple[int, str, int] | None:
    """(pid, state, start time) from ``/proc/PID/stat``; None if it cannot be read."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so cut at the last ")".
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    try:
        return int(head.split(" (", 1)[0]), fields[0], int(fields[19])
    except (ValueError, IndexError):
        return None


def _namespace() -> str | None:
    """The pid namespace, with the time namespace (start times are read through it) on
    kernels that have them."""
    try:
        pid_ns = os.readlink(_PROC / "self/ns/pid")
    except OSError:
        return None
    try:
        return f"{pid_ns} {os.readlink(_PROC / 'self/ns/time')}"
    except FileNotFoundError:
        return pid_ns  # a kernel without time namespaces
    except OSError:
        return None


def this_process() -> HostProcess | None:
    """This process's identity; None where it cannot be established (no ``/proc``, or one
    that shows another pid namespace). A worker without one is never declared dead by
    another, and declares none dead itself."""
    try:
        boot_id = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    namespace, stat, pid = _namespace(), _stat("self"), os.getpid()
    if not boot_id or namespace is None or stat is None or stat[0] != pid:
        return None
    return HostProcess(os.uname().nodename, boot_id, namespace, pid, stat[2])


def process_gone(pid: int, started: int) -> bool:
    """Whether the process with ``pid`` that started at ``started`` (both as seen from this
    process's namespaces) provably no longer exists. False whenever in doubt."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True  # no process has this pid
    except PermissionError:
        pass  # a process of another user has it
    except OSError:
        return False
    stat = _stat(pid)
    if stat is None:
        return False  # a process has the pid, but when it started cannot be read
    if stat[2] != started:
        return True  # the pid was reused: it now belongs to a process started later
    if stat[1] not in ("Z", "X"):
        return False
    # Exited, not yet reaped by its parent. A main thread that ended while other threads
    # run shows the same state: only a process with no thread left is gone.
    try:
        return os.listdir(_PROC / str(pid) / "task") == [str(pid)]
    except OSError:
        return False


@dataclass
class WorkerStats:
    claimed: int = 0
    executions: int = 0
    errors: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    def ended(self, status: RunStatus) -> None:
        if status is RunStatus.SUCCEEDED:
            self.succeeded += 1
        elif status is RunStatus.FAILED:
            self.failed += 1
        else:
            self.cancelled += 1

    def ends(self) -> tuple[int, int, int]:
        return self.succeeded, self.failed, self.cancelled


class Worker:
    def __init__(
        self,
        app: App,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency or self.settings.concurrency
        self.worker_id = worker_id or f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.control = RunControl()
        self.stats = WorkerStats()
        self._active: dict[str, Lease] = {}
        self._active_queue: dict[str, str] = {}
        self._active_lock = threading.Lock()
        self._wake = threading.Event()
        # Races for announced runs lost to other workers: how soon to claim again.
        self._pace = ClaimPace()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._exit_process_after_drain = False
        self._process: HostProcess | None = None
        self._dead_checked_at = 0.0
        # When the next run falls due by time alone, as last asked (``_wait_s``), and when.
        self._due: datetime | None = None
        self._due_looked_at = -math.inf
        self._until_idle = False
        # The ends counted in the last summary line, and when it was written.
        self._summarized = (0, 0, 0)
        self._summarized_at = time.monotonic()

    # -- lifecycle ----------------------------------------------------------------------------
    def run(self, *, install_signal_handlers: bool = True, until_idle: bool = False) -> None:
        """Work until stopped (SIGTERM/SIGINT, ``stop()``), or until no run is ready."""
        self.app.check_definitions()
        self._until_idle = until_idle
        rt = self.app.runtime
        self._exit_process_after_drain = (
            install_signal_handlers and threading.current_thread() is threading.main_thread()
        )
        if self._exit_process_after_drain:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        process = this_process()
        if process is None:
            host, pid = os.uname().nodename, os.getpid()
            rt.store.register_worker(self.worker_id, host, pid, self.queues or [], utc_now())
        else:
            rt.store.register_worker_process(
                self.worker_id,
                process.hostname,
                process.pid,
                self.queues or [],
                utc_now(),
                boot_id=process.boot_id,
                pid_namespace=process.namespace,
                process_started=process.started,
            )
        self._process = process
        self._take_over_dead_workers()
        self.app.add_waker(self._on_news)
        # It waits for news of new runs only while it has room for one.
        unsubscribe = rt.store.subscribe(self._on_news, waiting=self._has_room)
        heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="surefoot-heartbeat", daemon=True
        )
        heartbeat.start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="surefoot-run")
        log.info(
            "worker %s started (queues=%s, concurrency=%d)",
            self.worker_id,
            self.queues or "all",
            self.concurrency,
        )
        try:
            self._loop(pool, until_idle=until_idle)
        finally:
            unsubscribe()
            self._drain(pool)
            self.app.remove_waker(self._on_news)
            try:
                rt.store.worker_stopped(self.worker_id, utc_now())
            except StoreError:
                log.exception("could not record that worker %s stopped", self.worker_id)
            self._stopped.set()
            succeeded, failed, cancelled = self.stats.ends()
            log.info(
                "worker %s stopped; it ended %d runs: %d succeeded, %d failed, %d cancelled",
                self.worker_id,
                succeeded + failed + cancelled,
                succeeded,
                failed,
                cancelled,
            )

    def start(self) -> Worker:
        """Run in a background thread (embedded use and tests)."""
        self._thread = threading.Thread(
            target=self.run,
            kwargs={"install_signal_handlers": False},
            name=f"surefoot-worker-{self.worker_id}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Drain and stop; returns when the worker has stopped (or ``timeout`` passed)."""
        self._stop.set()
        self._wake.set()
        self._stopped.wait(timeout)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s: %s received, draining", self.worker_id, signal.Signals(signum).name)
        self._stop.set()
        self._wake.set()

    # -- the claim loop ----------------------------------------------------------------------------
    def _loop(self, pool: ThreadPoolExecutor, *, until_idle: bool) -> None:
        rt = self.app.runtime
        workflows = sorted(self.app.workflows)
        global_limits = {
            name: spec.concurrency
            for name, spec in self.app.queues.items()
            if spec.concurrency is not None
        }
        while not self._stop.is_set():
            with self._active_lock:
                free = self.concurrency - len(self._active)
                caps = self._worker_caps()
            claimed: list[ClaimedRun] = []
            now = utc_now()
            if free > 0:
                # Other workers took the runs the last news told of: let more news gather
                # before claiming again (see ``claim_pace``).
                pause = self._pace.pause_s()
                if pause:
                    if self._stop.wait(pause):
                        continue
                    now = utc_now()
                # A wake-up that came before this claim is answered by it: what woke the
                # worker was committed before the wake, so the claim sees it. Cleared
                # here rather than only after the wait, so that a wake arriving between
                # that wait and this claim does not cost a second, empty claim.
                self._wake.clear()
                answering = self._pace.claiming()
                started = time.perf_counter()
                try:
                    claimed = rt.store.claim(
                        self.worker_id,
                        workflows=workflows,
                        queues=self.queues,
                        limit=free,
                        lease_s=self.settings.lease_s,
                        now=now,
                        caps=caps,
                        global_concurrency=global_limits,
                    )
                except StoreError:
                    log.exception("claim failed; retrying")
                    self._stop.wait(self.settings.poll_interval_s)
                    continue
                finally:
                    instrument.store_call("claim", started)
                self._pace.claimed(answering, len(claimed))
            for item in claimed:
                with self._active_lock:
                    self._active[item.run.run_id] = item.lease
                    self._active_queue[item.run.run_id] = item.run.queue
                self.stats.claimed += 1
                pool.submit(self._execute, item)
            if claimed and len(claimed) == free:
                continue
            with self._active_lock:
                idle = not self._active
            if until_idle and idle and not claimed:
                return
            self._wake.wait(self._wait_s(free - len(claimed), workflows, now))
            self._wake.clear()

    def _on_news(self) -> None:
        """A run became claimable (a start, an event, a review decision...), here or in
        another process: claim."""
        self._pace.heard()
        self._wake.set()

    def _wait_s(self, room: int, workflows: Sequence[str], claimed_at: datetime) -> float:
        """How long to wait for a wake-up before claiming again: the poll interval, or
        less if a run falls due sooner by time alone (only with ``room`` for it)."""
        poll = self.settings.poll_interval_s
        if room <= 0 or not workflows:
            return poll  # a finishing run wakes the worker when it has room again
        looked_at = time.monotonic()
        if looked_at - self._due_looked_at >= DUE_LOOK_S:
            self._due_looked_at = looked_at
            try:
                self._due = self.app.runtime.store.next_due(
                    self.worker_id, workflows=workflows, now=claimed_at
                )
            except StoreError:
                log.exception("looking for the next run due failed; polling")
                self._due = None
        if self._due is None or self._due <= claimed_at:
            # Nothing falls due, or what did was there for the claim that just ran and was
            # not for this worker (a paused queue, a partition key's turn, a renewed lease).
            return poll
        return min(poll, max(0.0, (self._due - utc_now()).total_seconds()))

    def _has_room(self) -> bool:
        return len(self._active) < self.concurrency

    def _worker_caps(self) -> dict[str, int]:
        """How many more runs of each queue with a per-worker limit this worker may take."""
        caps: dict[str, int] = {}
        for name, spec in self.app.queues.items():
            if spec.worker_concurrency is not None:
                held = sum(1 for queue in self._active_queue.values() if queue == name)
                caps[name] = max(0, spec.worker_concurrency - held)
        return caps

    def _execute(self, claimed: ClaimedRun) -> None:
        run_id = claimed.run.run_id
        ended: RunStatus | None = None
        try:
            ended = execute(self.app.runtime, claimed, self.control)
            self.stats.executions += 1
        except LeaseLostError:
            log.warning("run %s: lease lost", run_id)
        except Exception:
            self.stats.errors += 1
            log.exception(
                "run %s: execution stopped by an unexpected error; its lease will "
                "expire and another attempt will follow",
                run_id,
            )
        finally:
            with self._active_lock:
                if ended is not None:
                    self.stats.ended(ended)
                was_full = len(self._active) >= self.concurrency
                self._active.pop(run_id, None)
                self._active_queue.pop(run_id, None)
                idle = not self._active
                self.control.cancelled.discard(run_id)
                self.control.lost.discard(claimed.lease)
            # Look for work again at once if this end may have made a run claimable that
            # was not: the run did not end (it waits, perhaps due at once, or was released),
            # this worker was full, or the run held a partition key or a limited queue's
            # slot (or an --until-idle worker may now stop). Otherwise its end frees
            # nothing a claim could use: new runs wake the worker themselves, and runs that
            # fall due are found by the poll, so an empty claim is not worth its write.
            if ended is None:
                # It may wait for a moment now: ask for the next one due afresh.
                self._due_looked_at = -math.inf
            if (
                ended is None
                or was_full
                or self._frees_a_slot(claimed.run)
                or (self._until_idle and idle)
            ):
                self._wake.set()

    def _frees_a_slot(self, run: RunRecord) -> bool:
        """Whether the end of ``run`` may let a claim take a run it could not take before:
        its partition key is free again, or its queue has a limit with one more slot."""
        if run.partition_key is not None:
            return True
        spec = self.app.queues.get(run.queue)
        return spec is not None and (
            spec.concurrency is not None or spec.worker_concurrency is not None
        )

    # -- leases ----------------------------------------------------------------------------------
    def _take_over_dead_workers(self) -> None:
        """Declare dead the workers of this host whose process is gone, so that the next
        claim takes their runs over without waiting for their leases to expire."""
        process = self._process
        if process is None:
            return
        self._dead_checked_at = time.monotonic()
        started = time.perf_counter()
        try:
            freed = self.app.runtime.store.declare_dead_workers(
                self.worker_id,
                hostname=process.hostname,
                boot_id=process.boot_id,
                pid_namespace=process.namespace,
                is_gone=process_gone,
                now=utc_now(),
            )
        except StoreError:
            log.exception("could not check for dead workers; their leases will expire")
            return
        finally:
            instrument.store_call("declare_dead_workers", started)
        for dead, run_ids in freed.items():
            log.warning(
                "worker %s is gone (its process no longer exists); taking over its %d runs",
                dead,
                len(run_ids),
            )
        if any(freed.values()):
            self._wake.set()

    def _heartbeat_loop(self) -> None:
        rt = self.app.runtime
        while not self._stopped.wait(self.settings.heartbeat_s):
            self._beat(rt)
            if time.monotonic() - self._dead_checked_at >= DEAD_WORKER_CHECK_S:
                self._take_over_dead_workers()
            self._summarize()

    def _summarize(self) -> None:
        """Every ``SUMMARY_S`` in which it ended runs, one INFO line: how many, by outcome.
        The line of each run is written only with ``log_each_run`` (see the logging module);
        this one tells an operator reading the log that the worker gets through runs."""
        now = time.monotonic()
        if now - self._summarized_at < SUMMARY_S:
            return
        with self._active_lock:
            ends = self.stats.ends()
            held = len(self._active)
        succeeded, failed, cancelled = (
            n - before for n, before in zip(ends, self._summarized, strict=True)
        )
        if succeeded or failed or cancelled:
            log.info(
                "worker %s ended %d runs in the last %.0f s: %d succeeded, %d failed, "
                "%d cancelled; %d in hand",
                self.worker_id,
                succeeded + failed + cancelled,
                now - self._summarized_at,
                succeeded,
                failed,
                cancelled,
                held,
                extra={"succeeded": succeeded, "failed": failed, "cancelled": cancelled},
            )
        self._summarized, self._summarized_at = ends, now

    def _beat(self, rt: Runtime) -> None:
        """Renew the leases held; note the ones lost and the runs to cancel."""
        with self._active_lock:
            leases = list(self._active.values())
        started = time.perf_counter()
        try:
            lost, cancels = rt.store.heartbeat(
                self.worker_id, leases, self.settings.lease_s, utc_now()
            )
        except StoreError:
            log.exception("heartbeat failed; leases will be renewed at the next beat")
            return
        finally:
            instrument.store_call("heartbeat", started)
        with self._active_lock:
            # Only leases still held count: one that ended meanwhile (the run suspended,
            # maybe already claimed again under a new lease) is not a loss.
            revoked = {
                lease
                for lease in leases
                if lease.run_id in lost and self._active.get(lease.run_id) == lease
            }
            self.control.lost.update(revoked)
            self.control.cancelled.update(run_id for run_id in cancels if run_id in self._active)
        for lease in revoked:
            log.warning("run %s: lease taken over by another worker", lease.run_id)

    def _drain(self, pool: ThreadPoolExecutor) -> None:
        """Stop claiming; hand each run back at its next step boundary.

        A step body cannot be stopped from outside. In a worker process (signal
        handlers installed) runs still inside a step when ``drain_timeout_s`` passes
        are released with their attempt recorded ``interrupted`` and the process ends
        at once, so no body can act after its run was handed back (the next worker
        reconciles it like any crash). An embedded worker never releases a run whose
        body is still running: it keeps renewing that lease until the body returns.
        """
        self.control.draining = True
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while time.monotonic() < deadline or not self._exit_process_after_drain:
            with self._active_lock:
                if not self._active:
                    break
            time.sleep(0.01)
        with self._active_lock:
            remaining = dict(self._active)
        if not remaining:
            pool.shutdown(wait=True)
            return
        rt = self.app.runtime
        for run_id, lease in remaining.items():
            try:
                rt.store.release(lease, utc_now(), interrupt_open_attempts=True)
                log.warning(
                    "run %s: still inside a step after the drain timeout; released with its "
                    "attempt recorded as interrupted",
                    run_id,
                )
            except (LeaseLostError, StoreError):
                log.exception("run %s: could not release", run_id)
        try:
            rt.store.worker_stopped(self.worker_id, utc_now())
        finally:
            log.warning(
                "worker %s: ending the process so no released step can go on", self.worker_id
            )
            logging.shutdown()
            os._exit(0)
