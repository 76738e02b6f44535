"""Worker and client subprocesses for durability tests: bounded, logged, always reaped.

Workers run exactly as in production, ``python -m surefoot worker APP --store URL``,
configured only through ``SUREFOOT_*`` variables, with short leases and fast polling. Each
runs with Python's fault handler on: one that does not end in time is sent SIGABRT first,
so its log ends with where every thread of it was, and then killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from surefoot.domain.records import RunRecord
from surefoot.store.base import Store
from tests.durability.support.ledger import LEDGER_ENV

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[3]
FLOWS_APP = "tests.durability.support.flows:app"
FORGETFUL_APP = "tests.durability.support.forgetful:app"
TAKEOVER_BLIND_APP = "tests.durability.support.takeover_blind:app"

FAST_SETTINGS: Mapping[str, str] = {
    "SUREFOOT_LEASE_S": "1",
    "SUREFOOT_HEARTBEAT_S": "0.2",
    "SUREFOOT_POLL_INTERVAL_S": "0.02",
    "SUREFOOT_INSTANT_RETRIES": "1",
    "SUREFOOT_DRAIN_TIMEOUT_S": "10",
}
EXIT_TIMEOUT_S = 15.0
DUMP_TIMEOUT_S = 5.0  # for a hung process to write its threads' stacks after SIGABRT


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    log: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """Starts subprocesses for one test; :meth:`close` kills whatever is still alive."""

    def __init__(self, log_dir: Path, store_url: str, ledger_path: Path) -> None:
        self.log_dir = log_dir
        self.store_url = store_url
        self.ledger_path = ledger_path
        self._procs: list[Proc] = []
        self._logs: list[IO[str]] = []

    def _env(self, settings: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUREFOOT_")}
        env.update(FAST_SETTINGS)
        env.update(settings)
        env[LEDGER_ENV] = str(self.ledger_path)
        env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT dumps every thread's stack to the log
        return env

    def _spawn(
        self, name: str, argv: list[str], settings: Mapping[str, str], *, pipe_stdout: bool
    ) -> Proc:
        log = self.log_dir / f"{len(self._procs):02d}-{name}.log"
        handle = log.open("w")
        self._logs.append(handle)
        popen = subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO_ROOT,
            env=self._env(settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe_stdout else handle,
            stderr=handle,
            text=True,
        )
        proc = Proc(name, popen, log)
        self._procs.append(proc)
        return proc

    def worker(
        self,
        app_spec: str = FLOWS_APP,
        *,
        crash_at: str | None = None,
        settings: Mapping[str, str] | None = None,
        until_idle: bool = False,
    ) -> Proc:
        env = dict(settings or {})
        if crash_at is not None:
            env["SUREFOOT_CRASH_AT"] = crash_at
        argv = ["-m", "surefoot", "worker", app_spec, "--store", self.store_url]
        if until_idle:
            argv.append("--until-idle")
        return self._spawn(
            f"worker-{crash_at or 'clean'}".replace("@", "-"), argv, env, pipe_stdout=False
        )

    def client(self) -> Proc:
        argv = ["-m", "tests.durability.support.client", self.store_url]
        return self._spawn("client", argv, {}, pipe_stdout=True)

    def cli(self, *args: str, timeout_s: float = EXIT_TIMEOUT_S) -> str:
        """Run ``python -m surefoot ARGS --store URL`` to completion; returns its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "surefoot", *args, "--store", self.store_url],
            cwd=REPO_ROOT,
            env=self._env({}),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        assert done.returncode == 0, f"surefoot {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    # -- endings ----------------------------------------------------------------------------------
    def wait_exit(self, proc: Proc, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        try:
            return proc.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.popen.send_signal(signal.SIGABRT)  # its threads' stacks, to its log
            try:
                proc.popen.wait(timeout=DUMP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=EXIT_TIMEOUT_S)
            raise AssertionError(
                f"{proc.name} (pid {proc.pid}) still ran after {timeout_s:g}s; aborted it"
                f" (its threads' stacks end the log).\n{proc.tail(lines=200)}"
            ) from None

    def expect_killed(self, proc: Proc, timeout_s: float = EXIT_TIMEOUT_S) -> None:
        """Wait for a worker to kill itself at its crash point (SIGKILL, no cleanup)."""
        code = self.wait_exit(proc, timeout_s)
        assert code == -signal.SIGKILL, (
            f"{proc.name} exited with {code}, not by SIGKILL at its crash point\n{proc.tail()}"
        )

    def kill(self, proc: Proc) -> None:
        """``kill -9`` from outside."""
        os.kill(proc.pid, signal.SIGKILL)
        self.expect_killed(proc)

    def stop(self, proc: Proc, timeout_s: float = EXIT_TIMEOUT_S) -> int:
        """SIGTERM (drain), then wait; returns the exit code."""
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
        return self.wait_exit(proc, timeout_s)

    def close(self) -> None:
        for proc in self._procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
            proc.popen.wait(timeout=EXIT_TIMEOUT_S)
            if proc.popen.stdout is not None:
                proc.popen.stdout.close()
        for handle in self._logs:
            handle.close()
        self._procs.clear()
        self._logs.clear()


# -- waiting --------------------------------------------------------------------------------------
def wait_until(
    probe: Callable[[], T | None], *, timeout_s: float, what: str, interval_s: float = 0.02
) -> T:
    """Call ``probe`` until it returns something truthy; that is returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


def thread_stacks() -> str:
    """Every thread of this process, by name, with its stack (innermost call last)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"--- thread {names.get(ident, ident)}\n{stack}")
    return "\n".join(parts)


def wait_terminal(
    store: Store, run_ids: Iterable[str], *, timeout_s: float = 20.0
) -> dict[str, RunRecord]:
    """Every run's record once all of them have ended."""
    ids = list(run_ids)
    deadline = time.monotonic() + timeout_s
    while True:
        runs = {run_id: store.get_run(run_id) for run_id in ids}
        found = {run_id: run for run_id, run in runs.items() if run is not None}
        assert len(found) == len(ids), f"runs missing from the store: {set(ids) - set(found)}"
        if all(run.status.is_terminal for run in found.values()):
            return found
        if time.monotonic() >= deadline:
            pending = {
                r.run_id[:8]: r.status.value for r in found.values() if not r.status.is_terminal
            }
            # Workers started in this process (``start_worker``) run in its threads: where
            # each one is tells what holds a run that does not end.
            raise AssertionError(
                f"runs not finished after {timeout_s:g}s: {pending}\n{thread_stacks()}"
            )
        time.sleep(0.05)
