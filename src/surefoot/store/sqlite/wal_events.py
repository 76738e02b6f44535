"""The kernel's word that a SQLite WAL file was written (Linux inotify).

Every commit, by any process, appends to the database's WAL file, so a write event on
that file is the moment to look for another process's commit (see ``watch``). The
events carry no content and the watcher decides nothing from them: a missed or extra
event only makes it look later or once more. Unavailable off Linux, without the
``inotify_simple`` package, or when the file cannot be watched: the watcher then polls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("surefoot.store")


class WalEvents:
    """Write events of one WAL file, waited for by one thread."""

    def __init__(self, inotify: Any, gone_mask: int) -> None:
        self._inotify = inotify
        self._gone_mask = gone_mask  # the file was deleted or moved: no more events
        self._wake_r, self._wake_w = os.pipe()  # ``interrupt`` ends a wait at once
        self._poller = select.poll()
        self._poller.register(inotify.fileno(), select.POLLIN)
        self._poller.register(self._wake_r, select.POLLIN)
        self._lock = threading.Lock()  # interrupt and close, from different threads
        self._closed = False
        self.usable = True

    @classmethod
    def open(cls, wal: Path) -> WalEvents | None:
        if not sys.platform.startswith("linux"):
            return None
        try:
            from inotify_simple import INotify, flags  # noqa: PLC0415 - Linux only
        except ImportError:
            return None
        try:
            inotify = INotify()
        except OSError as exc:  # out of inotify instances: poll instead
            log.debug("cannot watch %s: %s; polling", wal, exc)
            return None
        gone = flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED
        try:
            inotify.add_watch(wal, flags.MODIFY | flags.DELETE_SELF | flags.MOVE_SELF)
        except OSError as exc:  # no such file yet, or not allowed
            log.debug("cannot watch %s: %s; polling", wal, exc)
            inotify.close()
            return None
        return cls(inotify, int(gone))

    def ready(self, timeout_s: float) -> bool:
        """Whether the file has been written since the events were last read (they are then
        ready for :meth:`drain`): returns as soon as it has, or False after ``timeout_s`` or
        on :meth:`interrupt`.

        The write comes before the commit it belongs to is visible: SQLite appends the
        frames, waits for the disk, then publishes the commit in shared memory. So a
        write says "look now, and again shortly", not "there is something to see"."""
        if not self.usable:
            return False
        try:
            ready = self._poller.poll(max(1, round(timeout_s * 1000)))
        except OSError as exc:
            return self._failed(exc)
        return bool(ready) and not any(fd == self._wake_r for fd, _ in ready)

    def drain(self) -> bool:
        """Whether the file was written since the events were last read; never waits.
        Reads them all, so that :meth:`ready` then waits for a write after this call.
        Callers on several threads must take turns (the inotify read is not shared)."""
        if not self.usable or self._closed:
            return False
        try:
            events = self._inotify.read(timeout=0)
        except OSError as exc:
            return self._failed(exc)
        if any(event.mask & self._gone_mask for event in events):
            self.usable = False  # deleted or replaced: the watcher polls from now on
        return bool(events)

    def _failed(self, exc: OSError) -> bool:
        log.warning("watching the WAL file failed: %s; polling instead", exc)
        self.usable = False
        return False

    def interrupt(self) -> None:
        """End the current wait, and every later one, at once (the watcher is stopping)."""
        with self._lock:
            if not self._closed:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._inotify.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
