"""Group commit: the write transactions of one process share a COMMIT (and its fsync).

SQLite has one writer at a time and ``synchronous=FULL`` makes every COMMIT wait for the
disk, so a process whose threads each commit alone spends most of its time in fsync. Here
the write transactions of a process queue up for one writing connection. The caller that
finds the connection free becomes the *leader*: on its own thread it runs every
transaction waiting at that moment inside one ``BEGIN IMMEDIATE`` ... ``COMMIT``, each in
its own SAVEPOINT (a batch of one needs none); callers that arrive meanwhile wait for
the leader to finish, and then either find their work done or lead the next batch
themselves. An unloaded caller thus commits on its own thread with no hand-off, and a
busy process still shares commits:

* a transaction that raises (a fenced write refused, a conflict) is rolled back to its
  savepoint alone; the others in the batch are unaffected (alone in its batch, it is
  rolled back whole, and nothing is committed);
* no caller is released before the COMMIT that holds its work has returned, so nothing is
  acknowledged before it is durable;
* if the COMMIT itself fails, every caller of the batch gets the error;
* what a batch keeps in memory between its items (the audit chain's head: see
  ``audit_chain``) follows the batch through ``BatchHooks``: it is forgotten when a
  transaction begins, taken back with an item's savepoint, and written before the COMMIT;
* a batch made only of writes submitted with ``flush=False`` (a worker's claims) commits
  with ``synchronous=NORMAL``: its COMMIT reaches the WAL file, and so every other process,
  without waiting for the disk. Such a write acknowledges nothing to anyone outside: only
  a crash of the machine itself can lose it, and that ends every process that could have
  acted on it (SQLite's WAL needs them all on one machine), while every later COMMIT with
  ``synchronous=FULL`` flushes the WAL file, and the earlier write with it, to disk. A
  batch with any other write in it commits with ``synchronous=FULL``.

The writing connection also tells whether *another* connection (another process) has
committed since it last looked: ``PRAGMA data_version`` changes only for commits made
elsewhere, never for its own. ``data_version`` asks it, without waiting for a batch.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from surefoot.errors import StoreError

T = TypeVar("T")

MAX_BATCH = 64
FIRST_LOCK_PAUSE_S = 0.00005
MAX_LOCK_PAUSE_S = 0.001
CLOSE_TIMEOUT_S = 10.0


class BatchHooks(Protocol):
    """What the group committer tells a participant about the batch it is writing."""

    def begin(self) -> None:
        """A new write transaction has begun (a retried batch begins again)."""

    def mark(self) -> object:
        """Before an item runs: a token to go back to if the item is rolled back."""

    def rollback_to(self, mark: object) -> None:
        """The item that followed ``mark`` was rolled back to its savepoint."""

    def before_commit(self, cur: sqlite3.Cursor) -> None:
        """Every item has run; write what was kept in memory before the COMMIT."""


@dataclass
class _Work(Generic[T]):
    fn: Callable[[sqlite3.Cursor], T]
    flush: bool = True  # False: the COMMIT need not wait for the disk (see the module doc)
    done: bool = False  # read and written only under the committer's leader lock
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
        hooks: BatchHooks | None = None,
    ) -> None:
        self.name = name  # the database file's name, for messages
        self._hooks: BatchHooks = hooks if hooks is not None else _NoHooks()
        self._connect = connect
        self._is_busy = is_busy
        self._busy_deadline_s = busy_deadline_s
        self._pending: deque[_Work[Any]] = deque()
        self._leader = threading.Lock()  # held by the caller that runs a batch
        self._inside = threading.local()  # set while this thread runs a batch
        self._conn: sqlite3.Connection | None = None
        self._flushing = True  # the writing connection's synchronous level: FULL, or NORMAL
        self._closed = False
        self._observer: CommitObserver | None = None  # told of each COMMIT with changes

    def submit(self, fn: Callable[[sqlite3.Cursor], T], *, flush: bool = True) -> T:
        """Run ``fn`` in a write transaction; return once its COMMIT is durable (with
        ``flush=False``: once it is committed, on disk or not; see the module doc)."""
        if getattr(self._inside, "active", False):
            raise StoreError("a write transaction cannot open another one")
        if self._closed:
            raise StoreError("the store is closed")
        work: _Work[T] = _Work(fn, flush)
        self._pending.append(work)
        while True:
            with self._leader:
                if work.done:
                    break
                self._lead()
        if work.error is not None:
            raise work.error
        result: T = work.result
        return result

    def close(self) -> None:
        # Wait (bounded) for a batch in progress; one stuck on a locked database keeps its
        # connection, and the batches after it fail with "the store is closed".
        acquired = self._leader.acquire(timeout=CLOSE_TIMEOUT_S)
        try:
            if self._closed:
                return
            self._closed = True
            conn, self._conn = (self._conn, None) if acquired else (None, self._conn)
        finally:
            if acquired:
                self._leader.release()
        if conn is not None:
            conn.close()

    def observe(self, observer: CommitObserver) -> None:
        """Tell ``observer`` when each COMMIT with changes begins and when it has returned
        (the change watcher, which tells this process's writes of the WAL file from
        others')."""
        self._observer = observer

    def data_version(self) -> int | None:
        """The writing connection's ``PRAGMA data_version``: it changes when another
        connection commits, not when this one does. None while a batch is being written
        (the writer is busy anyway), or if the writing connection cannot be opened."""
        if not self._leader.acquire(blocking=False):
            return None
        try:
            if self._closed:
                return None
            if self._conn is None:
                self._conn = self._open()
            row = self._conn.execute("PRAGMA data_version").fetchone()
            return int(row[0])
        except (sqlite3.Error, StoreError):  # cannot tell now: the caller looks again later
            return None
        finally:
            self._leader.release()

    def _open(self) -> sqlite3.Connection:
        """The writing connection. It has no busy timeout: the write lock is waited for
        by ``_begin_immediate``, not by SQLite's busy handler."""
        conn = self._connect()
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA synchronous=FULL")
        self._flushing = True
        return conn

    # -- the leader, on the caller's thread, holding ``_leader`` -----------------------------
    def _lead(self) -> None:
        batch: list[_Work[Any]] = []
        while self._pending and len(batch) < MAX_BATCH:
            batch.append(self._pending.popleft())
        if not batch:
            return
        self._inside.active = True
        try:
            if self._closed:
                raise StoreError("the store is closed")
            if self._conn is None:
                self._conn = self._open()
            self._run_batch(self._conn, batch)
        except BaseException as exc:  # handed to every caller of the batch, re-raised below
            failure = exc if isinstance(exc, StoreError) else StoreError(str(exc))
            if failure is not exc:
                failure.__cause__ = exc
            for work in batch:
                work.error = failure
            if self._conn is not None and self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.rollback()
            if not isinstance(exc, Exception):
                raise  # Ctrl-C or exit in the leading thread goes on up that thread
        finally:
            self._inside.active = False
            for work in batch:
                work.done = True

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
        hooks = self._hooks
        changes_before = conn.total_changes
        cur = conn.cursor()
        # The level cannot change inside a transaction: set before it begins, if it must.
        flush = any(work.flush for work in batch)
        if flush != self._flushing:
            cur.execute("PRAGMA synchronous=FULL" if flush else "PRAGMA synchronous=NORMAL")
            self._flushing = flush
        self._begin_immediate(cur)
        hooks.begin()
        # A batch of one needs no savepoint: if its item fails, the whole transaction is
        # rolled back, and there is nothing to commit.
        alone = len(batch) == 1
        for work in batch:
            work.result, work.error = None, None
            mark = hooks.mark()
            if not alone:
                cur.execute("SAVEPOINT surefoot_op")
            try:
                work.result = work.fn(cur)
            except sqlite3.OperationalError as exc:
                if self._is_busy(exc):
                    raise  # the lock was lost: the whole batch is retried
                self._undo(cur, alone, mark)
                work.error = StoreError(str(exc))
                work.error.__cause__ = exc
            except Exception as exc:  # noqa: BLE001 - this caller's own failure
                self._undo(cur, alone, mark)
                work.error = StoreError(str(exc)) if isinstance(exc, sqlite3.Error) else exc
                if work.error is not exc:
                    work.error.__cause__ = exc
            if not alone:
                cur.execute("RELEASE surefoot_op")
        if alone and batch[0].error is not None:
            return  # rolled back whole: nothing was written
        hooks.before_commit(cur)
        # A COMMIT with changes writes the WAL file (see ``observe``); one without does not.
        observer = self._observer if conn.total_changes != changes_before else None
        if observer is not None:
            observer.commit_begins()
        try:
            conn.commit()
        finally:
            if observer is not None:
                observer.commit_returned()

    def _undo(self, cur: sqlite3.Cursor, alone: bool, mark: object) -> None:
        """Take back a failed item's writes: to its savepoint, or the whole transaction
        when it is the batch's only item."""
        if alone:
            cur.connection.rollback()
        else:
            cur.execute("ROLLBACK TO surefoot_op")
        self._hooks.rollback_to(mark)

    def _begin_immediate(self, cur: sqlite3.Cursor) -> None:
        """``BEGIN IMMEDIATE``, waiting for another connection's write lock in short pauses.

        The writing connection has no busy timeout: SQLite's own handler would sleep 1, 2,
        5, 10 ms ... between looks, far longer than another process holds the lock, so two
        processes writing at once (a client starting runs, a worker committing steps) would
        each spend much of their time asleep. Here the pauses start at 50 us and double up
        to 1 ms, with jitter so that two waiters do not look in step; past the busy
        deadline the error goes up as before."""
        pause = FIRST_LOCK_PAUSE_S
        deadline: float | None = None
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not self._is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._busy_deadline_s
                elif now > deadline:
                    raise
            time.sleep(random.uniform(pause / 2, pause))  # noqa: S311 - jitter, not security
            pause = min(pause * 2, MAX_LOCK_PAUSE_S)


class CommitObserver(Protocol):
    """Told of every COMMIT with changes of the writing connection, on the committing
    thread: such a COMMIT writes the WAL file before it returns."""

    def commit_begins(self) -> None: ...

    def commit_returned(self) -> None: ...


class _NoHooks:
    def begin(self) -> None:
        pass

    def mark(self) -> object:
        return None

    def rollback_to(self, mark: object) -> None:
        pass

    def before_commit(self, cur: sqlite3.Cursor) -> None:
        pass
