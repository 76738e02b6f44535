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
fraction of a millisecond of it; while no subscriber waits for news (a worker with no
room for another run, a client not waiting for a result), it looks at once and then
every 2 ms instead, and at once on each new write. A commit writes its pages one by one,
so the watcher may read the first writes of a commit before the last ones are made: the
writes found unread once the commit shows are taken for its last ones, and followed by a
look every 2 ms for a while (and at once on a new write) rather than every 0.2 ms. The
process's own writes are told apart exactly: the group committer says when each of its
commits begins and when it has returned (``commit_begins``, ``commit_returned``), a
write read in between is its own, and the rest of its writes are read as it returns; a
write read at any other time is another process's (SQLite lets one connection write at a
time). A commit of another process whose writes the watcher, busy, reads only once one
of its own has begun is taken for its own: it is seen at the next write of another
process, or at the look the watcher makes after 50 ms without a write, in case one was
missed. Elsewhere, or when the WAL file cannot be watched, it polls: every 2 ms until a
second has passed without a change, then backing off to 50 ms, so an idle worker costs
next to nothing. It only makes the worker prompt: the worker's poll stays the safety
net, and nothing here reads or writes runs.
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
MAX_INTERVAL_S = 0.05
STAY_FAST_S = 1.0  # after a change, keep looking every MIN_INTERVAL_S this long
JOIN_TIMEOUT_S = 2.0

Wake = Callable[[], None]
Waiting = Callable[[], bool]


@dataclass(frozen=True, eq=False)
class _Subscriber:
    wake: Wake
    waiting: Waiting | None  # whether it waits for news now; None: always


class ChangeWatcher:
    """Fans "another connection committed" out to subscribers, from one daemon thread
    started by the first subscriber and stopped when the last one leaves."""

    def __init__(
        self,
        data_version: Callable[[], int | None],
        *,
        name: str,
        wal: Path | None = None,
    ) -> None:
        self._data_version = data_version  # None when it cannot be read right now
        self._name = name
        self._wal = wal  # the WAL file, watched for writes where the platform allows
        self._lock = threading.Lock()
        self._subscribers: list[_Subscriber] = []
        self._stopping: threading.Event | None = None
        self._events: WalEvents | None = None  # the running thread's, closed by it
        self._thread: threading.Thread | None = None
        self._closed = False
        # Reads of the WAL file's events, by the watch thread and by a committing thread,
        # and whether this process is committing, change only under this lock.
        self._reading = threading.Lock()
        self._own_commit = False  # a COMMIT of this process is writing the WAL file

    def subscribe(self, wake: Wake, waiting: Waiting | None = None) -> Callable[[], None]:
        """Call ``wake`` on each commit seen; ``waiting`` tells whether this subscriber
        waits for one right now (None: always). While none does, a write of another
        process is followed by a look at once and every MIN_INTERVAL_S, not every
        FINE_INTERVAL_S: a busy worker has no use for news a millisecond sooner."""
        subscriber = _Subscriber(wake, waiting)
        with self._lock:
            if self._closed:
                raise StoreError(f"{self._name}: the store is closed")
            self._subscribers.append(subscriber)
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
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)
                if self._subscribers:
                    return
                detached = self._detach_locked()
            detached.end()

        return unsubscribe

    def commit_begins(self) -> None:
        """A COMMIT of this process begins: the WAL file's writes until it returns are its."""
        with self._reading:
            self._own_commit = True

    def commit_returned(self) -> None:
        """That COMMIT has returned, all its pages written: read the events of the writes
        not read yet, so that none is taken for another process's. Another process cannot
        have written since (it had to wait for this one's write lock, then run its own
        statements first)."""
        with self._reading:
            if self._events is not None:
                self._events.drain()
            self._own_commit = False

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
                with self._reading:
                    events.close()

    def _watch(
        self, stopping: threading.Event, events: WalEvents | None, initial: int | None
    ) -> None:
        last = initial
        unread = initial is None  # the last look could not read the version
        interval = MIN_INTERVAL_S
        changed_at = time.monotonic()
        closely_until = 0.0  # after a write of the WAL: look every FINE_INTERVAL_S until then
        doubt_until = 0.0  # after a change with writes left unread: look soon until then
        while True:
            if events is not None and events.usable:
                now = time.monotonic()
                if now < closely_until:
                    if stopping.wait(FINE_INTERVAL_S):
                        return
                # On the next write of the WAL file (or after MAX_INTERVAL_S); soon again
                # if the writer was busy the last time, or a commit may be on its way.
                elif events.ready(
                    MIN_INTERVAL_S if unread or now < doubt_until else MAX_INTERVAL_S
                ):
                    with self._reading:
                        written, own = events.drain(), self._own_commit
                    if not written:
                        continue  # read as a commit of its own returned
                    if own:
                        continue  # its own commit: nothing to look for
                    if self._awaited():
                        closely_until = time.monotonic() + FINE_WINDOW_S
                    else:
                        # Nobody waits for news: look now, then at the next write or
                        # within MIN_INTERVAL_S, rather than every FINE_INTERVAL_S.
                        doubt_until = time.monotonic() + FINE_WINDOW_S
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
                    if events is not None and self._writes_left_unread(events):
                        # Writes left unread while looking closely: most likely the last
                        # ones of the commit just seen, which will show nothing new, but
                        # perhaps the next commit. Look every MIN_INTERVAL_S for a while,
                        # and at once on a new write, rather than every FINE_INTERVAL_S.
                        doubt_until = changed_at + FINE_WINDOW_S
                last = version
            if time.monotonic() - changed_at < STAY_FAST_S:
                interval = MIN_INTERVAL_S
            else:
                interval = min(interval * 2, MAX_INTERVAL_S)

    def _writes_left_unread(self, events: WalEvents) -> bool:
        """Read the events of the writes not read yet; whether there were any."""
        with self._reading:
            return events.drain()

    def _awaited(self) -> bool:
        """Whether a subscriber waits for news now (one whose answer fails counts)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                if subscriber.waiting is None or subscriber.waiting():
                    return True
            except Exception:  # a subscriber's failure must not end the watch
                log.exception("a wake-up subscriber failed to tell whether it waits")
                return True
        return False

    def _wake_all(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber.wake()
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
