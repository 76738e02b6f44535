"""Chaining the audit entries a store's writes leave pending, shortly after they commit.

A write transaction stores its audit entries in ``audit_pending`` (see
:mod:`surefoot.store.postgres.audit`); a sweep chains them. Each store has a sweeper, a
thread started at its first audited commit, which sweeps :data:`SWEEP_DELAY_S` after a
commit that stored entries (one sweep for every commit in that time, not one each). A
sweep waits for the head and chains everything pending that was committed before it
began, whoever stored it (the entries of a process that died before its sweep are
chained by the next sweep of any process). A sweep that fails (the database unreachable
for longer than the store retries) is tried again after the next audited commit, or at
the next read of the log, which sweeps first; closing a store sweeps once more if a
commit came after its last sweep began.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("surefoot.store")

# How long after an audited commit the sweep is sent: entries wait about this long for
# their place in the chain, and a busy process sweeps at most this often (each sweep
# chains what every process stored meanwhile, in one transaction).
SWEEP_DELAY_S = 0.05
JOIN_S = 5.0  # how long closing waits for a sweep being sent


class AuditSweeper:
    """Calls ``sweep`` on a thread of its own, ``delay_s`` after :meth:`poke`."""

    def __init__(self, sweep: Callable[[], None], *, delay_s: float = SWEEP_DELAY_S) -> None:
        self._sweep = sweep
        self._delay_s = delay_s
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """A commit stored audit entries: sweep soon."""
        self._wanted.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(
                        target=self._loop, name="surefoot-audit-sweep", daemon=True
                    )
                    self._thread.start()

    def stop(self) -> bool:
        """Stop the thread; whether a sweep was still wanted (an audited commit since the
        last sweep began), for the caller to send one last sweep itself."""
        with self._lock:
            self._stopping.set()
            thread = self._thread
        wanted = self._wanted.is_set()
        self._wanted.set()
        if thread is not None:
            thread.join(JOIN_S)
        return wanted

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping.wait(self._delay_s):  # the delay, cut short by stop()
                return
            self._wanted.clear()
            try:
                self._sweep()
            except Exception:  # the thread lives on: the next commit or read sweeps
                log.warning(
                    "pending audit entries could not be chained yet; the next sweep"
                    " (after the next audited commit, or any read of the log) chains them",
                    exc_info=True,
                )
