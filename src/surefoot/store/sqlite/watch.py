"""Wake-ups on SQLite: a thread that notices what other processes commit.

SQLite cannot notify another process, so without help a worker finds a run that another
process (``app.start`` in a web server, a CLI redrive) committed only at its next poll.
The watcher asks the store's writing connection for ``PRAGMA data_version`` (a read of
the WAL index in shared memory, no disk I/O), which changes only when *another*
connection commits, never for the process's own writes, and wakes every subscriber
when it changed. It looks every 2 ms until a second has passed without a change, then
backs off to 50 ms, so an idle worker costs next to nothing. It only makes the worker
prompt: the worker's poll stays the safety net, and nothing here reads or writes runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from surefoot.errors import StoreError

log = logging.getLogger("surefoot.store")

MIN_INTERVAL_S = 0.002
MAX_INTERVAL_S = 0.05
STAY_FAST_S = 1.0  # after a change, keep looking every MIN_INTERVAL_S this long
JOIN_TIMEOUT_S = 2.0

Wake = Callable[[], None]


class ChangeWatcher:
    """Fans "another connection committed" out to subscribers, from one daemon thread
    started by the first subscriber and stopped when the last one leaves."""

    def __init__(self, data_version: Callable[[], int | None], *, name: str) -> None:
        self._data_version = data_version  # None when it cannot be read right now
        self._name = name
        self._lock = threading.Lock()
        self._subscribers: list[Wake] = []
        self._stopping: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def subscribe(self, wake: Wake) -> Callable[[], None]:
        with self._lock:
            if self._closed:
                raise StoreError(f"{self._name}: the store is closed")
            self._subscribers.append(wake)
            if self._thread is None:
                self._stopping = threading.Event()
                self._thread = threading.Thread(
                    target=self._loop,
                    args=(self._stopping,),
                    name=f"surefoot-watch-{self._name}",
                    daemon=True,
                )
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                if wake in self._subscribers:
                    self._subscribers.remove(wake)
                if self._subscribers:
                    return
                detached = self._detach_locked()
            _end(*detached)

        return unsubscribe

    def close(self) -> None:
        """Stop watching for good (the store closes)."""
        with self._lock:
            self._closed = True
            self._subscribers.clear()
            detached = self._detach_locked()
        _end(*detached)

    def _detach_locked(self) -> tuple[threading.Event | None, threading.Thread | None]:
        detached = self._stopping, self._thread
        self._stopping, self._thread = None, None
        return detached

    def _loop(self, stopping: threading.Event) -> None:
        last: int | None = None
        interval = MIN_INTERVAL_S
        changed_at = time.monotonic()
        while not stopping.wait(interval):
            version = self._data_version()  # None: the writer is busy, or has not written yet
            if version is not None:
                if last is not None and version != last:
                    changed_at = time.monotonic()
                    with self._lock:
                        subscribers = list(self._subscribers)
                    for wake in subscribers:
                        try:
                            wake()
                        except Exception:  # a subscriber's failure must not end the watch
                            log.exception("a wake-up subscriber failed")
                last = version
            if time.monotonic() - changed_at < STAY_FAST_S:
                interval = MIN_INTERVAL_S
            else:
                interval = min(interval * 2, MAX_INTERVAL_S)


def _end(stopping: threading.Event | None, thread: threading.Thread | None) -> None:
    if stopping is not None:
        stopping.set()
    if thread is not None and thread is not threading.current_thread():
        thread.join(JOIN_TIMEOUT_S)
