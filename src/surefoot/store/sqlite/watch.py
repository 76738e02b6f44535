"""Wake-ups on SQLite: a thread that notices what other processes commit.

SQLite cannot notify another process, so without help a worker finds a run that another
process (``app.start`` in a web server, a CLI redrive) committed only at its next poll.
The watcher asks the store's writing connection for ``PRAGMA data_version`` (a read of
the WAL index in shared memory, no disk I/O), which changes only when *another*
connection commits, never for the process's own writes, and wakes every subscriber
when it changed.

When to ask: on Linux, the kernel says when the WAL file is written (inotify), by this
process or another. After a write by another process the watcher asks every 0.2 ms until
the commit shows (its writer's disk flush comes first), so a worker wakes within a
fraction of a millisecond of it; a write made while this process commits is taken for
its own and not followed. It also asks every 50 ms, in case a write was missed.
Elsewhere, or when the WAL file cannot be watched, it polls: every 2 ms until a second
has passed without a change, then backing off to 50 ms, so an idle worker costs next to
nothing. It only makes the worker prompt: the worker's poll stays the safety net, and
nothing here reads or writes runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from surefoot.errors import StoreError
from surefoot.store.sqlite.wal_events import WalEvents

log = logging.getLogger("surefoot.store")

MIN_INTERVAL_S = 0.002
# After a write of the WAL file, its commit becomes visible once the writer's disk flush
# returns: look every FINE_INTERVAL_S for up to FINE_WINDOW_S.
FINE_INTERVAL_S = 0.0002
FINE_WINDOW_S = 0.01
# A write of the WAL file while this process is committing changes, or within this long
# after, is taken for its own and not looked at: a commit elsewhere at that very moment
# is seen at the next write, or within MAX_INTERVAL_S.
OWN_WRITE_GRACE_S = 0.0002
OWN_WRITES_PAUSE_S = 0.001
MAX_INTERVAL_S = 0.05
STAY_FAST_S = 1.0  # after a change, keep looking every MIN_INTERVAL_S this long
JOIN_TIMEOUT_S = 2.0

Wake = Callable[[], None]


class ChangeWatcher:
    """Fans "another connection committed" out to subscribers, from one daemon thread
    started by the first subscriber and stopped when the last one leaves."""

    def __init__(
        self,
        data_version: Callable[[], int | None],
        *,
        name: str,
        wal: Path | None = None,
        writing: Callable[[float], bool] | None = None,
    ) -> None:
        self._data_version = data_version  # None when it cannot be read right now
        self._writing = writing  # whether this process commits now (or did a moment ago)
        self._name = name
        self._wal = wal  # the WAL file, watched for writes where the platform allows
        self._lock = threading.Lock()
        self._subscribers: list[Wake] = []
        self._stopping: threading.Event | None = None
        self._events: WalEvents | None = None  # the running thread's, closed by it
        self._thread: threading.Thread | None = None
        self._closed = False

    def subscribe(self, wake: Wake) -> Callable[[], None]:
        with self._lock:
            if self._closed:
                raise StoreError(f"{self._name}: the store is closed")
            self._subscribers.append(wake)
            if self._thread is None:
                self._stopping = threading.Event()
                self._events = WalEvents.open(self._wal) if self._wal is not None else None
                # Where the database stands now, so that the first commit elsewhere after
                # this returns is a change (None if the writer is busy: read soon after).
                self._thread = threading.Thread(
                    target=self._loop,
                    args=(self._stopping, self._events, self._data_version()),
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
            detached.end()

        return unsubscribe

    def close(self) -> None:
        """Stop watching for good (the store closes)."""
        with self._lock:
            self._closed = True
            self._subscribers.clear()
            detached = self._detach_locked()
        detached.end()

    def _detach_locked(self) -> _Detached:
        detached = _Detached(self._stopping, self._events, self._thread)
        self._stopping, self._events, self._thread = None, None, None
        return detached

    def _loop(
        self, stopping: threading.Event, events: WalEvents | None, initial: int | None
    ) -> None:
        try:
            self._watch(stopping, events, initial)
        finally:
            if events is not None:
                events.close()

    def _watch(
        self, stopping: threading.Event, events: WalEvents | None, initial: int | None
    ) -> None:
        last = initial
        unread = initial is None  # the last look could not read the version
        interval = MIN_INTERVAL_S
        changed_at = time.monotonic()
        closely_until = 0.0  # after a write of the WAL: look every FINE_INTERVAL_S until then
        while True:
            if events is not None and events.usable:
                if time.monotonic() < closely_until:
                    if stopping.wait(FINE_INTERVAL_S):
                        return
                # On the next write of the WAL file (or after MAX_INTERVAL_S); soon again
                # if the writer was busy the last time. A write of its own is not looked at.
                elif events.wait(MIN_INTERVAL_S if unread else MAX_INTERVAL_S):
                    if stopping.is_set():
                        return
                    if self._writing is not None and self._writing(OWN_WRITE_GRACE_S):
                        # Its own commits come in bursts: let a burst pass before the next
                        # look at the file, instead of waking for each of its writes.
                        if stopping.wait(OWN_WRITES_PAUSE_S):
                            return
                        continue
                    closely_until = time.monotonic() + FINE_WINDOW_S
                if stopping.is_set():
                    return
            elif stopping.wait(interval):
                return
            version = self._data_version()  # None: the writer is busy, or has not written yet
            unread = version is None
            if version is not None:
                if last is not None and version != last:
                    changed_at = time.monotonic()
                    closely_until = 0.0
                    self._wake_all()
                last = version
            if time.monotonic() - changed_at < STAY_FAST_S:
                interval = MIN_INTERVAL_S
            else:
                interval = min(interval * 2, MAX_INTERVAL_S)

    def _wake_all(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for wake in subscribers:
            try:
                wake()
            except Exception:  # a subscriber's failure must not end the watch
                log.exception("a wake-up subscriber failed")


@dataclass(frozen=True)
class _Detached:
    """A watch thread being stopped: told to stop, woken from its wait, joined."""

    stopping: threading.Event | None
    events: WalEvents | None
    thread: threading.Thread | None

    def end(self) -> None:
        if self.stopping is not None:
            self.stopping.set()
        if self.events is not None:
            self.events.interrupt()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(JOIN_TIMEOUT_S)
