"""Group commit: the write transactions of one process share a COMMIT (and its fsync).

SQLite has one writer at a time and ``synchronous=FULL`` makes every COMMIT wait for the
disk, so a process whose threads each commit alone spends most of its time in fsync. Here
every write transaction goes to one writer thread, which runs all the transactions waiting
at that moment inside one ``BEGIN IMMEDIATE`` ... ``COMMIT``, each in its own SAVEPOINT:

* a transaction that raises (a fenced write refused, a conflict) is rolled back to its
  savepoint alone; the others in the batch are unaffected;
* no caller is released before the COMMIT that holds its work has returned, so nothing is
  acknowledged before it is durable;
* if the COMMIT itself fails, every caller of the batch gets the error.
"""

from __future__ import annotations

import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from surefoot.errors import StoreError

T = TypeVar("T")

MAX_BATCH = 64


@dataclass
class _Work(Generic[T]):
    fn: Callable[[sqlite3.Cursor], T]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommitter:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        name: str,
        is_busy: Callable[[sqlite3.OperationalError], bool],
        busy_deadline_s: float,
    ) -> None:
        self._connect = connect
        self._is_busy = is_busy
        self._busy_deadline_s = busy_deadline_s
        self._queue: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop, name=f"surefoot-commit-{name}", daemon=True
        )
        self._thread.start()

    def submit(self, fn: Callable[[sqlite3.Cursor], T]) -> T:
        """Run ``fn`` in a write transaction; return once its COMMIT is durable."""
        if threading.current_thread() is self._thread:
            raise StoreError("a write transaction cannot open another one")
        if self._closed:
            raise StoreError("the store is closed")
        work: _Work[T] = _Work(fn)
        self._queue.put(work)
        work.done.wait()
        if work.error is not None:
            raise work.error
        result: T = work.result
        return result

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    # -- the writer thread ---------------------------------------------------------------
    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                if conn is None:
                    conn = self._connect()
                self._run_batch(conn, batch)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                failure = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                if failure is not exc:
                    failure.__cause__ = exc
                for work in batch:
                    work.error = failure
                if conn is not None and conn.in_transaction:
                    conn.rollback()
            finally:
                for work in batch:
                    work.done.set()
            if stop:
                break
        if conn is not None:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Work[Any]]) -> None:
        deadline = time.monotonic() + self._busy_deadline_s
        delay = 0.005
        while True:
            try:
                self._attempt(conn, batch)
                return
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.rollback()
                if not self._is_busy(exc) or time.monotonic() > deadline:
                    raise StoreError(str(exc)) from exc
            time.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, 0.5)

    def _attempt(self, conn: sqlite3.Connection, batch: list[_Work[Any]]) -> None:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        for work in batch:
            work.result, work.error = None, None
            cur.execute("SAVEPOINT surefoot_op")
            try:
                work.result = work.fn(cur)
            except sqlite3.OperationalError as exc:
                if self._is_busy(exc):
                    raise  # the lock was lost: the whole batch is retried
                cur.execute("ROLLBACK TO surefoot_op")
                work.error = StoreError(str(exc))
                work.error.__cause__ = exc
            except Exception as exc:  # noqa: BLE001 - this caller's own failure
                cur.execute("ROLLBACK TO surefoot_op")
                work.error = StoreError(str(exc)) if isinstance(exc, sqlite3.Error) else exc
                if work.error is not exc:
                    work.error.__cause__ = exc
            cur.execute("RELEASE surefoot_op")
        conn.commit()
