"""Worker processes: ``python -m surefoot worker bench.app:app``, bounded in time, always reaped.

Every process started here is tracked, runs in its own session (so its whole group can be
signalled), writes its log to a file in the benchmark's temporary directory, and is killed by
:func:`kill_all` if a benchmark ends early.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_SPEC = "bench.app:app"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Linux kills a worker when the benchmark dies, even by kill -9, so none is left behind.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1
_LIVE: set[WorkerProcess] = set()


class WorkerError(RuntimeError):
    """A worker process died or did not come up; the message ends with its log."""


class WorkerProcess:
    """One ``surefoot worker`` subprocess."""

    def __init__(
        self,
        store_url: str,
        log_path: Path,
        *,
        concurrency: int,
        settings: dict[str, str] | None = None,
        app_spec: str = APP_SPEC,
    ) -> None:
        self.store_url = store_url
        self.app_spec = app_spec
        self.log_path = log_path
        self.concurrency = concurrency
        self.settings = dict(settings or {})
        self._process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.time() just before the process was spawned

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUREFOOT_")}
        env.update({f"SUREFOOT_{k.upper()}": v for k, v in self.settings.items()})
        env["SUREFOOT_STORE_URL"] = self.store_url
        command = [
            sys.executable,
            "-m",
            "surefoot",
            "worker",
            self.app_spec,
            "--store",
            self.store_url,
            "--concurrency",
            str(self.concurrency),
        ]
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self._process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one libc call, nothing else
            )
        _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        if self._process is None:
            raise WorkerError("the worker was not started")
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise WorkerError(f"worker {self.pid} exited early; its log:\n{self.log_tail()}")

    def kill9(self) -> None:
        """``kill -9``: no drain, no cleanup, leases left to expire."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
        self._reap(5.0)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (the worker drains), then SIGKILL if it has not ended in ``timeout_s``."""
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                assert self._process is not None
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
        self._reap(5.0)

    def _reap(self, timeout_s: float) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self._process.wait(timeout_s)
        _LIVE.discard(self)

    # -- what /proc says ------------------------------------------------------------------
    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        return _status_kb(self.pid, "VmHWM") / 1024

    def cpu_s(self) -> float:
        """User plus system CPU seconds of the process (all its threads)."""
        text = Path(f"/proc/{self.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the benchmark's main thread ends."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise WorkerError(f"/proc/{pid}/status has no {key}")


def kill_all() -> None:
    """Kill every worker this benchmark started that is still running."""
    for worker in list(_LIVE):
        try:
            worker.kill9()
        except (ProcessLookupError, WorkerError):
            _LIVE.discard(worker)
