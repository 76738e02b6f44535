"""Group commit: the write transactions of one process share a COMMIT (and its flush).

A write transaction's caller waits for its COMMIT, flush included, before it goes on;
one commit per caller would make each pay a flush and a round trip of its own. Here the
write transactions of a process queue up instead. The caller that finds the writer free
becomes the *leader*: on its own thread it runs every transaction waiting at that
moment, one after the other, in one PostgreSQL transaction on one connection, and
commits them with one ``COMMIT`` (their deferred writes, wake-ups and audit entries in
its one pipelined round trip). Callers that arrive meanwhile wait for the leader to
finish; it then wakes the callers whose work it did, and the caller at the head of the
queue, who leads the next batch (each caller waits on a condition of its own, so a
batch's end does not wake every waiting thread of a busy worker to find most with
nothing to do). An unloaded caller thus commits on its own thread with no hand-off, and
a busy process shares commits:

* a transaction function that raises affects only itself. Savepoints would cost a round
  trip each, so the batch runs without them, optimistically: when a function raises (a
  fenced write refused, a conflict), the whole transaction is rolled back, that caller
  gets its error, and the others are run again in a new transaction. Transaction
  functions are re-runnable (transient errors re-run them too), and what they leave for
  the end of the transaction is collected afresh for each attempt, so only what the
  committed functions left is sent with ``COMMIT``;
* each function sees the writes of those before it in its batch, as if they had
  committed first: what a function deferred to the end of the transaction (writes it
  does not read back) is sent before the next function that reads runs, in one round
  trip; only the last function's waits for the ``COMMIT`` round trip. A *blind* function
  reads nothing (a run's own writes whose lease check is itself deferred), so nothing
  need be sent before it: what consecutive blind functions deferred goes in one round
  trip. When such a send fails for good, which function's statement failed is not known;
  the transaction is rolled back and the batch run again with what each function
  deferred sent on its own, which finds the one at fault (failures are rare: a lease
  taken over, a run changed under its worker);
* a transient error (connection lost, server restart, serialization failure, deadlock)
  re-runs the whole batch, as it re-runs a lone transaction; a function that failed for
  good is not run again;
* no caller is released before the ``COMMIT`` that holds its work has returned, so
  nothing is acknowledged before it is durable;
* if the ``COMMIT`` itself fails for good, every caller of the batch gets the error.

A transaction function that opens another write transaction would wait for itself; it
gets a :class:`~surefoot.errors.StoreError` instead.

A batch holds the row locks its functions take until its ``COMMIT``, so a function that
waits for a lock another process holds delays its whole batch; the functions are short
and lock the runs they change, which one worker holds at a time.

While one batch waits for the server (its statements, its ``COMMIT`` and the flush), the
process has Python work to do for the next one, so up to ``leaders`` batches
(:meth:`GroupCommitter.set_leaders`) may be written at once, each on its own connection,
but only of functions submitted as *concurrent*: functions that lock nothing but the
rows of the one run whose lease their caller holds (a step's attempt, journal entry and
end, a run's wait or end, a claim, which skips locked rows instead of waiting for them).
Two such batches never wait for each other's rows: a run's writes come from the one
thread executing it, one at a time. (Their audit entries lock nothing either: they are
chained later, see :mod:`surefoot.store.postgres.audit`.) Any other function (a
heartbeat that extends the leases of all of the process's runs, a shared rate-limit
bucket, a breaker, an operator's change) runs in a batch that is written alone: it
starts only when no batch is being written, and no batch starts while it runs or waits.
Two batches of one process thus never lock the same rows in opposite orders, and cannot
deadlock each other.

The committer knows nothing of connections: ``PostgresBase`` (in
:mod:`surefoot.store.postgres.base`) gives it the function that writes a batch, and
calls :meth:`GroupCommitter.run_items` inside each attempt's transaction.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import psycopg

from surefoot.errors import StoreError

T = TypeVar("T")
C = TypeVar("C")

MAX_BATCH = 64


@dataclass
class Work(Generic[C, T]):
    """One caller's transaction function and, once ``done``, its outcome."""

    fn: Callable[[C], T]
    concurrent: bool = False  # locks only its own run's rows: may share the server
    blind: bool = False  # reads nothing: runs without what those before it deferred sent
    woken: threading.Condition | None = None  # its caller waits on it (the committer's lock)
    done: bool = False  # read and written only under the committer's lock
    failed: bool = False  # its own error is final: it is not run again
    result: Any = None
    error: BaseException | None = None


class Again(enum.Enum):
    """What :meth:`GroupCommitter.run_items` returns when a send of several functions'
    deferred statements failed for good: roll back and run the batch again, each
    function's sent on its own."""

    ONE_BY_ONE = "one by one"


def _run(work: Work[C, Any], cursor: C) -> None:
    work.result = None
    work.result = work.fn(cursor)


def _fail(work: Work[C, Any], error: BaseException) -> Work[C, Any]:
    """``work`` failed for good with ``error``: it is not run again."""
    work.error = error
    work.failed = True
    return work


class GroupCommitter(Generic[C]):
    """The write transactions of one store, run in batches on the callers' threads."""

    def __init__(
        self,
        write: Callable[[Sequence[Work[C, Any]]], None],
        *,
        settle: Callable[[C], None],
        is_transient: Callable[[psycopg.Error], bool],
        wrap: Callable[[psycopg.Error], StoreError],
        must_settle: Callable[[C, bool], bool] = lambda _cursor, _shared: False,
    ) -> None:
        """``write`` commits a batch (retrying transient errors) or raises; it calls
        :meth:`run_items` in its transaction. ``settle`` sends what a function left for
        the end of the transaction that the next function could read. ``must_settle``
        tells whether what the last function left must be sent before ``COMMIT`` too (it
        holds a check whose failure is that function's own, or, when the batch has other
        functions, as its second argument says, a write that may fail on its own). ``wrap`` makes a
        caller's own database error into the error that caller gets. One batch is
        written at a time until :meth:`set_leaders` allows more."""
        self._write = write
        self._settle = settle
        self._must_settle = must_settle
        self._is_transient = is_transient
        self._wrap = wrap
        self._pending: deque[Work[C, Any]] = deque()
        self._leaders = 1  # batches of concurrent functions that may be written at once
        # Guards the queue, the counts below and every ``done``. Each caller waits on a
        # condition of its own over this lock, and is woken only when its work is done or
        # when it heads the queue and a batch may start: a batch that ends wakes its own
        # callers and at most one other, not every caller waiting.
        self._lock = threading.Lock()
        self._leading = 0  # batches being written
        self._alone = False  # whether the one being written must run alone
        self._waiting_alone = 0  # functions in the queue that must run alone
        self._inside = threading.local()  # set while this thread runs a batch

    def submit(self, fn: Callable[[C], T], *, concurrent: bool = False, blind: bool = False) -> T:
        """Run ``fn`` in a write transaction; return once the COMMIT holding it has.

        ``concurrent`` says that ``fn`` locks only the rows of the run whose lease its
        caller holds, so its batch may be written while others are. ``blind`` says that
        ``fn`` reads nothing (it only defers statements), so what the functions before it
        in its batch deferred need not be sent before it runs."""
        if getattr(self._inside, "active", False):
            raise StoreError("a write transaction cannot open another one")
        work: Work[C, T] = Work(fn, concurrent, blind, woken=threading.Condition(self._lock))
        with self._lock:
            self._pending.append(work)
            self._waiting_alone += not concurrent
            while not work.done:
                batch = self._next_batch()
                if batch is None:
                    assert work.woken is not None
                    work.woken.wait()
                    continue
                # Lead the next batch (ours, unless 64 came before it).
                alone = not all(item.concurrent for item in batch)
                self._leading += 1
                self._alone = alone
                self._wake_next()  # another batch may be written beside this one
                self._lock.release()
                try:
                    self._lead(batch)
                finally:
                    self._lock.acquire()
                    for done in batch:
                        done.done = True
                        if done is not work and done.woken is not None:
                            done.woken.notify()
                    self._leading -= 1
                    if alone:
                        self._alone = False
                    self._wake_next()
        if work.error is not None:
            raise work.error
        result: T = work.result
        return result

    def set_leaders(self, leaders: int) -> None:
        """From now on, write up to ``leaders`` batches of concurrent functions at once
        (batches being written go on)."""
        if leaders < 1:
            raise ValueError("at least one batch must be able to run")
        with self._lock:
            self._leaders = leaders
            self._wake_next()

    def _may_start(self) -> bool:
        """Whether a batch may start now. Called with the lock held."""
        if not self._pending:
            return False
        # Only concurrent functions join a batch being written, and none do while one
        # that must run alone waits for the writer: it goes next.
        return not (
            self._leading and (self._alone or self._waiting_alone or self._leading >= self._leaders)
        )

    def _wake_next(self) -> None:
        """If a batch may start, wake the caller at the head of the queue to lead it (a
        caller that leads wakes the next in turn, while more may start). Called with the
        lock held."""
        if self._may_start():
            woken = self._pending[0].woken
            if woken is not None:
                woken.notify()

    def _next_batch(self) -> list[Work[C, Any]] | None:
        """The batch to write now, taken from the queue, or None if none may start yet.
        Called with the lock held."""
        if not self._may_start():
            return None
        batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
        self._waiting_alone -= sum(not item.concurrent for item in batch)
        return batch

    def run_items(
        self, cursor: C, batch: Sequence[Work[C, Any]], *, one_by_one: bool = False
    ) -> Work[C, Any] | Again | None:
        """Run the functions of ``batch`` not yet failed, in order, in the open transaction.

        Before each function that is not blind, what the functions before it deferred to
        the end of the transaction and it could read (their deferred writes) is sent, so
        each function sees the writes of those before it, as if they had committed
        first. The same is done after the last one when ``must_settle`` says so. With
        ``one_by_one``, what each function deferred is sent before the next one runs,
        blind or not, so that a failing send is known to be that function's.

        Returns the first that failed for good, with its error set, or
        :attr:`Again.ONE_BY_ONE` when a send of what several functions deferred failed
        for good; the transaction must then be rolled back (it holds the failed writes)
        and the batch run again. A transient error is raised: the whole batch is to be
        retried.
        """
        unsent: list[Work[C, Any]] = []  # ran, what they deferred not yet sent
        for work in batch:
            if work.failed:
                continue
            if unsent and (one_by_one or not work.blind):
                failed = self._send(cursor, unsent)
                if failed is not None:
                    return failed
            error = self._failure(partial(_run, work, cursor))
            if error is not None:
                return _fail(work, error)
            unsent.append(work)
        if unsent and self._must_settle(cursor, sum(not work.failed for work in batch) > 1):
            return self._send(cursor, unsent)
        return None

    def _send(self, cursor: C, unsent: list[Work[C, Any]]) -> Work[C, Any] | Again | None:
        """Send what the functions of ``unsent`` deferred (emptying it): None if that
        went well, else the one at fault, or ``Again.ONE_BY_ONE`` if it could be any of
        several."""
        error = self._failure(partial(self._settle, cursor))
        if error is None:
            unsent.clear()
            return None
        if len(unsent) > 1:
            return Again.ONE_BY_ONE
        return _fail(unsent[0], error)

    def _failure(self, step: Callable[[], None]) -> BaseException | None:
        """Run ``step`` (a function, or a send of what functions deferred): its failure
        for good, made into what the caller gets, or None. A transient error is raised."""
        try:
            step()
        except psycopg.Error as exc:
            if self._is_transient(exc):
                raise
            return self._wrap(exc)
        except Exception as exc:  # noqa: BLE001 - a caller's own failure, handed to it
            return exc
        return None

    # -- the leader, on the caller's thread --------------------------------------------------
    def _lead(self, batch: list[Work[C, Any]]) -> None:
        """Write ``batch``; whatever happens, every caller in it gets an outcome."""
        self._inside.active = True
        try:
            self._write(batch)
        except BaseException as exc:  # handed to every caller of the batch, re-raised below
            failure = exc if isinstance(exc, StoreError) else StoreError(str(exc))
            if failure is not exc:
                failure.__cause__ = exc
            for work in batch:
                if not work.failed:
                    work.error = failure
            if not isinstance(exc, Exception):
                raise  # Ctrl-C or exit in the leading thread goes on up that thread
        finally:
            self._inside.active = False
