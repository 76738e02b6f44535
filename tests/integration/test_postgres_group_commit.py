"""Group commit on PostgreSQL: the write transactions of a process share a COMMIT.

These tests hold the committer to what it promises: concurrent writers all commit, in
fewer COMMITs than writers, with the audit chain intact; a transaction that raises
commits nothing of its own (no row, no audit entry, no wake-up) and leaves the others
of its batch alone; no caller returns before the COMMIT holding its work; a connection
cut in the middle of a batch, or a COMMIT whose answer is lost, neither loses nor
doubles anything; a nested write is refused instead of waiting for itself.

To put several writes in one batch deterministically, a first write holds the writer
until the others all wait for it (:func:`in_one_batch`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from surefoot.domain.audit import verify_chain
from surefoot.domain.queues import RateLimit
from surefoot.domain.records import AuditRecord, Lease, NewRun
from surefoot.domain.status import RunStatus
from surefoot.errors import LeaseLostError, StoreError
from surefoot.store.base import RunEnd, StepCommit
from surefoot.store.postgres import PostgresStore
from surefoot.store.postgres.base import (
    BATCHES_WHEN_ALONE,
    NOTIFY_CHANNEL,
    RECOUNT_S,
    Cursor,
    is_transient,
    one,
)
from surefoot.store.postgres.group_commit import Again, GroupCommitter, Work
from tests import postgres_support
from tests.contract.support import ACTOR, SUCCEEDED, at, attempt, committed_step, new_run
from tests.integration.support.batches import Outcome, calls_in_one_batch
from tests.integration.support.lost_commit import lose_next_commit_answer
from tests.postgres_support import PostgresServer

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


class CommitCounter:
    """Counts the write transactions that reached ``COMMIT``."""

    def __init__(self, store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = store._commit

        def counting(*args: Any) -> None:
            self.count += 1
            real(*args)

        monkeypatch.setattr(store, "_commit", counting)


def wait_until(probe: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def in_one_batch(
    store: PostgresStore,
    fns: Sequence[Callable[[Cursor], Any]],
    on_return: Callable[[Any], None] | None = None,
) -> list[Outcome]:
    """Each of ``fns`` written from its own thread, all in one batch in the order given
    (see :func:`calls_in_one_batch`)."""
    return calls_in_one_batch(store, [partial(store._write, fn) for fn in fns], on_return)


def audited_insert(store: PostgresStore, queue: str) -> Callable[[Cursor], str]:
    """A write that adds a queue row, an audit entry, a deferred write and a wake-up:
    everything a transaction can leave for its end."""

    def txn(cur: Cursor) -> str:
        cur.execute(
            "INSERT INTO queues (queue, paused, changed_by, changed_at)"
            " VALUES (%s, FALSE, 'tester', %s)",
            (queue, T0),
        )
        store._later_txn(cur, "UPDATE queues SET paused = TRUE WHERE queue = %s", (queue,))
        store._audit_txn(
            cur, AuditRecord("tester", "test.inserted", "queue", queue, None, {"n": 1}), T0
        )
        store._notify_txn(cur, queue)
        return queue

    return txn


def queue_rows(url: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT queue, paused FROM queues").fetchall())


def audit_counts(store: PostgresStore) -> dict[str, int]:
    """Audit entries by entity id; checks the chain on the way."""
    entries = store.audit_entries(after_seq=0, limit=100_000)
    head = store.audit_head()
    if entries:
        assert head is not None
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert verify_chain(entries, head_seq=head[0], head_hash=head[1]) == []
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.entity_id] = counts.get(entry.entity_id, 0) + 1
    return counts


def claimed_lease(store: PostgresStore) -> Lease:
    run = NewRun(
        run_id=uuid.uuid4().hex, workflow="flow", queue="runs", inputs="{}", inputs_hash="h"
    )
    store.create_run(run, T0, "tester")
    (claimed,) = store.claim("w", workflows=["flow"], queues=None, limit=1, lease_s=300, now=T0)
    return claimed.lease


# -- batching -----------------------------------------------------------------------------------
def test_concurrent_writers_all_commit_in_fewer_commits_with_the_chain_intact(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    commits = CommitCounter(store, monkeypatch)
    writers, per_writer = 16, 10
    start = threading.Barrier(writers)

    def writer(w: int) -> list[str]:
        start.wait()
        return [store._write(audited_insert(store, f"w{w}-{n}")) for n in range(per_writer)]

    with ThreadPoolExecutor(writers) as pool:
        returned = [q for done in pool.map(writer, range(writers)) for q in done]

    expected = {f"w{w}-{n}" for w in range(writers) for n in range(per_writer)}
    assert set(returned) == expected
    assert queue_rows(postgres_url) == dict.fromkeys(expected, True)  # deferred writes too
    assert audit_counts(store) == dict.fromkeys(expected, 1)
    assert commits.count < writers * per_writer, "no COMMIT was shared"


def test_writers_waiting_together_share_one_commit(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    commits = CommitCounter(store, monkeypatch)
    names = [f"q{n}" for n in range(10)]

    outcomes = in_one_batch(store, [audited_insert(store, name) for name in names])

    assert outcomes == [("ok", name) for name in names]
    assert commits.count == 2  # the holder's, and one for all ten
    assert queue_rows(postgres_url) == dict.fromkeys(names, True)
    assert audit_counts(store) == dict.fromkeys(names, 1)


def test_a_lone_writer_commits_on_its_own_thread(store: PostgresStore):
    assert store._write(lambda cur: threading.get_ident()) == threading.get_ident()


def test_a_nested_write_is_refused_not_deadlocked(store: PostgresStore, postgres_url: str):
    def outer(cur: Cursor) -> None:
        audited_insert(store, "outer")(cur)
        store._write(audited_insert(store, "inner"))

    with pytest.raises(StoreError, match="cannot open another"):
        store._write(outer)
    assert queue_rows(postgres_url) == {}
    assert store._write(audited_insert(store, "after")) == "after"  # the writer is free again


# -- one failing transaction in a batch -----------------------------------------------------------
@pytest.mark.parametrize("failure", ["lease-lost", "database-error"])
def test_a_failing_transaction_commits_nothing_and_leaves_its_batch_alone(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch, failure: str
):
    lease = claimed_lease(store)
    stale = Lease(lease.run_id, lease.worker_id, lease.epoch - 1)
    heard: list[str] = []
    with psycopg.connect(postgres_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")

        def failing(cur: Cursor) -> None:
            audited_insert(store, "failing")(cur)  # all of it must go
            if failure == "lease-lost":
                store._fence_txn(cur, stale)
            else:
                cur.execute("SELECT * FROM no_such_table")

        def fenced(name: str) -> Callable[[Cursor], str]:
            def txn(cur: Cursor) -> str:
                store._fence_txn(cur, lease)
                return audited_insert(store, name)(cur)

            return txn

        commits = CommitCounter(store, monkeypatch)
        outcomes = in_one_batch(
            store,
            [
                audited_insert(store, "first"),
                fenced("second"),
                failing,
                audited_insert(store, "last"),
            ],
        )
        heard = [n.payload for n in listener.notifies(timeout=0.5)]

    assert [kind for kind, _ in outcomes] == ["ok", "ok", "error", "ok"]
    error = outcomes[2][1]
    if failure == "lease-lost":
        assert isinstance(error, LeaseLostError)
    else:
        assert isinstance(error, StoreError)
        assert isinstance(error.__cause__, psycopg.errors.UndefinedTable)
    assert commits.count == 2  # the holder's, and one for the batch: it was one batch
    survivors = ["first", "second", "last"]
    assert queue_rows(postgres_url) == dict.fromkeys(survivors, True)
    counts = audit_counts(store)
    counts.pop(lease.run_id)  # the run's creation and claim
    assert counts == dict.fromkeys(survivors, 1)
    assert "failing" not in heard
    assert set(survivors) <= set(heard)


@pytest.mark.parametrize("settled", [True, False], ids=["as-written", "negative-control"])
def test_a_transaction_sees_the_deferred_writes_of_those_before_it_in_its_batch(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, settled: bool
):
    if not settled:  # leave every deferred write for COMMIT
        monkeypatch.setattr(store._committer, "_settle", lambda cur: None)

    def paused(cur: Cursor) -> bool:
        return bool(one(cur.execute("SELECT paused FROM queues WHERE queue = 'q'"))["paused"])

    outcomes = in_one_batch(store, [audited_insert(store, "q"), paused])

    assert outcomes == [("ok", "q"), ("ok", settled)]  # the insert defers paused = TRUE


def test_a_deferred_write_that_fails_fails_only_its_own_transaction(
    store: PostgresStore, postgres_url: str
):
    store._write(audited_insert(store, "taken"))

    def clashing(cur: Cursor) -> str:
        audited_insert(store, "clashing")(cur)
        store._later_txn(
            cur,
            "INSERT INTO queues (queue, paused, changed_by, changed_at)"
            " VALUES ('taken', FALSE, 'tester', %s)",
            (T0,),
        )
        return "clashing"

    outcomes = in_one_batch(
        store, [audited_insert(store, "first"), clashing, audited_insert(store, "last")]
    )

    assert [kind for kind, _ in outcomes] == ["ok", "error", "ok"]
    assert isinstance(outcomes[1][1], StoreError)
    assert isinstance(outcomes[1][1].__cause__, psycopg.errors.UniqueViolation)
    assert queue_rows(postgres_url) == dict.fromkeys(["taken", "first", "last"], True)
    assert audit_counts(store) == dict.fromkeys(["taken", "first", "last"], 1)


def test_a_batch_whose_commit_fails_fails_every_caller(store: PostgresStore, postgres_url: str):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE audit_pending ADD CONSTRAINT no_forbidden"
            " CHECK (NOT jsonb_path_exists(entries, '$[*][4] ? (@ == \"forbidden\")'))"
        )

    outcomes = in_one_batch(
        store,
        [
            audited_insert(store, "a"),
            audited_insert(store, "forbidden"),
            audited_insert(store, "b"),
        ],
    )

    assert [kind for kind, _ in outcomes] == ["error"] * 3
    for _, error in outcomes:
        assert isinstance(error, StoreError)
        assert isinstance(error.__cause__, psycopg.errors.CheckViolation)
    assert queue_rows(postgres_url) == {}
    assert store.audit_head() is None


# -- nothing acknowledged before it is committed ---------------------------------------------------
class ReleasesBeforeCommit(GroupCommitter[Cursor]):
    """Deliberately broken: tells each caller its work is done once its function ran,
    before the COMMIT."""

    def __init__(self, store: PostgresStore) -> None:
        super().__init__(
            store._write_batch,
            settle=store._send_later_txn,
            is_transient=is_transient,
            wrap=store._store_error,
        )

    def run_items(
        self, cursor: Cursor, batch: Sequence[Work[Cursor, Any]], *, one_by_one: bool = False
    ) -> Work[Cursor, Any] | Again | None:
        failed = super().run_items(cursor, batch, one_by_one=one_by_one)
        if failed is None:
            with self._lock:
                for work in batch:
                    work.done = True
                    if work.woken is not None:
                        work.woken.notify()
        return failed


@pytest.mark.parametrize("broken", [False, True], ids=["as-written", "negative-control"])
def test_no_caller_returns_before_the_commit_holding_its_write(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch, broken: bool
):
    if broken:
        monkeypatch.setattr(store, "_committer", ReleasesBeforeCommit(store))
    real_commit = store._commit

    def slow_commit(*args: Any) -> None:
        time.sleep(0.2)  # a slow flush: a caller released early would return meanwhile
        real_commit(*args)

    monkeypatch.setattr(store, "_commit", slow_commit)
    visible: dict[str, bool] = {}
    names = [f"q{n}" for n in range(6)]

    with psycopg.connect(postgres_url, autocommit=True) as checker:
        lock = threading.Lock()

        def check(name: str) -> None:
            with lock:
                row = checker.execute("SELECT 1 FROM queues WHERE queue = %s", (name,))
                visible[name] = row.fetchone() is not None

        outcomes = in_one_batch(store, [audited_insert(store, name) for name in names], check)

    assert outcomes == [("ok", name) for name in names]
    assert queue_rows(postgres_url) == dict.fromkeys(names, True)
    if broken:
        assert not all(visible.values()), "the negative control was not caught"
    else:
        assert visible == dict.fromkeys(names, True)


# -- connection loss ------------------------------------------------------------------------------
def test_a_connection_cut_during_a_batch_loses_and_doubles_nothing(
    store: PostgresStore, postgres_url: str, postgres_server: PostgresServer
):
    dbname = urlsplit(postgres_url).path.lstrip("/")
    cuts: list[int] = []
    names = [f"q{n}" for n in range(8)]

    def cutting(cur: Cursor) -> str:
        audited_insert(store, "cutter")(cur)
        if not cuts:  # first attempt only: the batch's connection is killed mid-batch
            cuts.append(postgres_server.terminate_backends(dbname))
        cur.execute("SELECT 1")
        return "cutter"

    batch = [audited_insert(store, name) for name in names[:4]]
    batch += [cutting] + [audited_insert(store, name) for name in names[4:]]
    outcomes = in_one_batch(store, batch)

    assert cuts
    assert cuts[0] >= 1
    assert [kind for kind, _ in outcomes] == ["ok"] * len(batch)
    everything = [*names, "cutter"]
    assert queue_rows(postgres_url) == dict.fromkeys(everything, True)
    assert audit_counts(store) == dict.fromkeys(everything, 1)


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "rolled-back"])
def test_a_batch_whose_commit_answer_is_lost_is_applied_exactly_once(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch, committed: bool
):
    names = [f"q{n}" for n in range(5)]
    armed: list[list[bool]] = []

    def arm(cur: Cursor) -> None:
        if not armed:  # the batch runs again after the lost answer: armed once
            armed.append(lose_next_commit_answer(monkeypatch, committed=committed))

    # Armed by the batch's first function: the holder's COMMIT has returned by then, and the
    # batch's is the one whose answer is lost.
    outcomes = in_one_batch(store, [arm, *(audited_insert(store, name) for name in names)])
    monkeypatch.undo()

    assert armed == [[True]]
    assert [kind for kind, _ in outcomes] == ["ok"] * (len(names) + 1)
    assert queue_rows(postgres_url) == dict.fromkeys(names, True)
    assert audit_counts(store) == dict.fromkeys(names, 1)


# -- batches written at once -----------------------------------------------------------------------
class AllConcurrent(GroupCommitter[Cursor]):
    """Deliberately broken: takes every write for a run's own, so a write that may lock
    other runs' rows (a heartbeat) shares the server with other batches."""

    def __init__(self, store: PostgresStore) -> None:
        super().__init__(
            store._write_batch,
            settle=store._send_later_txn,
            must_settle=store._must_settle,
            is_transient=is_transient,
            wrap=store._store_error,
        )
        self.set_leaders(BATCHES_WHEN_ALONE)

    def submit(
        self, fn: Callable[[Cursor], Any], *, concurrent: bool = False, blind: bool = False
    ) -> Any:
        return super().submit(fn, concurrent=True, blind=blind)


def register(store: PostgresStore, worker_id: str, now: datetime) -> None:
    store.register_worker_process(
        worker_id,
        "host",
        1000 + len(worker_id),
        [],
        now,
        boot_id="boot",
        pid_namespace="ns",
        process_started=1,
    )


def written_at_once(store: PostgresStore, *, concurrent: bool = True) -> bool:
    """Whether two writes from two threads were written at the same time (each on its
    own connection), rather than one after the other."""
    meet = threading.Barrier(2, timeout=2)

    def txn(cur: Cursor) -> int:
        meet.wait()  # passes only while the other write's batch is being written too
        return int(one(cur.execute("SELECT pg_backend_pid() AS pid"))["pid"])

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(store._write, txn, concurrent=concurrent) for _ in range(2)]
        errors = [f.exception() for f in futures]
    if errors == [None, None]:
        assert len({f.result() for f in futures}) == 2
        return True
    # One after the other: each waited for the other in vain.
    assert all(isinstance(error, threading.BrokenBarrierError) for error in errors), errors
    return False


@pytest.mark.parametrize("concurrent", [True, False], ids=["concurrent", "negative-control"])
def test_a_lone_worker_writes_runs_own_writes_at_once_on_their_own_connections(
    store: PostgresStore, concurrent: bool
):
    register(store, "w", datetime.now(UTC))
    assert written_at_once(store, concurrent=concurrent) is concurrent


def test_with_other_live_workers_a_process_writes_one_batch_at_a_time(
    store: PostgresStore, postgres_url: str
):
    assert not written_at_once(store)  # not a worker (yet): one at a time
    now = datetime.now(UTC)
    register(store, "w", now)
    assert written_at_once(store)  # the only live worker
    elsewhere = PostgresStore(postgres_url)  # another worker process
    try:
        register(elsewhere, "other", now)  # registers...
        store.heartbeat("w", [], 30, now)  # ...and the first counts it at its next heartbeat
        assert not written_at_once(store)
        later = now + timedelta(seconds=5)
        store.heartbeat("w", [], 1, later)  # the other's heartbeat is stale
        assert written_at_once(store)
        register(elsewhere, "third", later)  # another one starts...
        elsewhere.create_run(new_run(), later, ACTOR)
        assert written_at_once(store)
        store._live_counted_at -= RECOUNT_S  # ...and a second later, a claim counts it
        assert store.claim("w", workflows=["flow"], queues=None, limit=1, lease_s=1, now=later)
        assert not written_at_once(store)
    finally:
        elsewhere.close()


@pytest.mark.parametrize("broken", [False, True], ids=["as-written", "negative-control"])
def test_a_write_that_may_lock_other_runs_rows_is_written_alone(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, broken: bool
):
    register(store, "w", T0)  # the only live worker: writes several batches at once
    if broken:
        monkeypatch.setattr(store, "_committer", AllConcurrent(store))
    stop = threading.Event()

    def own_write(cur: Cursor) -> None:
        cur.execute("SELECT pg_sleep(0.005)")  # keeps its batch open a while

    def busy_run() -> None:
        while not stop.is_set():
            store._write(own_write, concurrent=True)

    shared_with: list[int] = []

    def alone(cur: Cursor) -> None:
        shared_with.append(store._committer._leading - 1)  # other batches being written

    runs = [threading.Thread(target=busy_run) for _ in range(2)]
    for thread in runs:
        thread.start()
    try:
        wait_until(lambda: store._committer._leading >= 2, "two batches written at once")
        for _ in range(20):
            store._write(alone)
            time.sleep(0.002)
    finally:
        stop.set()
        for thread in runs:
            thread.join(10)

    if broken:
        assert max(shared_with) > 0, "the negative control was not caught"
    else:
        assert shared_with == [0] * 20


@pytest.mark.parametrize("broken", [False, True], ids=["as-written", "negative-control"])
def test_a_busy_worker_does_not_deadlock_with_itself(
    store: PostgresStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    broken: bool,
):
    """Many runs' step writes and ends, written in concurrent batches, while heartbeats
    extend every lease and take tokens: no deadlock is detected (each would have been
    retried, with a warning), and everything commits."""
    register(store, "w", T0)  # the only live worker: writes several batches at once
    if broken:
        monkeypatch.setattr(store, "_committer", AllConcurrent(store))
    runs, steps = 12, 8
    for _ in range(runs):
        store.create_run(new_run(), T0, ACTOR)
    claimed = store.claim("w", workflows=["flow"], queues=None, limit=runs, lease_s=300, now=T0)
    leases = [c.lease for c in claimed]
    assert len(leases) == runs
    stop = threading.Event()

    def heartbeats() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            store.heartbeat("w", leases, 300, at(n / 1000))
            store.take_token(RateLimit(f"key-{n % 2}", per_s=1000, burst=1000), at(n / 1000))

    def execute(lease: Lease) -> None:
        for position in range(1, steps + 1):
            now = at(position)
            store.commit_steps(
                lease,
                [
                    StepCommit(
                        attempt(lease, now, position=position),
                        start_written=False,
                        result=SUCCEEDED,
                        journal=committed_step(lease.run_id, now, position=position),
                        at=now,
                    )
                ],
            )
        store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, output='"done"'), at(steps + 1))

    beating = threading.Thread(target=heartbeats)
    beating.start()
    try:
        with caplog.at_level(logging.WARNING), ThreadPoolExecutor(runs) as pool:
            list(pool.map(execute, leases))
    finally:
        stop.set()
        beating.join(10)

    deadlocks = [r for r in caplog.records if "deadlock" in r.getMessage()]
    if broken:
        assert deadlocks, "the negative control was not caught"
    else:
        assert not deadlocks
    for lease in leases:
        run = store.get_run(lease.run_id)
        assert run is not None
        assert run.status is RunStatus.SUCCEEDED
        assert len(store.list_journal(lease.run_id)) == steps
    assert audit_counts(store)  # the chain verifies


# -- wake-ups -------------------------------------------------------------------------------------
class CountedWake:
    """Stands in for a waiting caller's condition: counts the wake-ups sent to it."""

    def __init__(self, real: threading.Condition) -> None:
        self.real = real
        self.sent = 0

    def notify(self, n: int = 1) -> None:
        self.sent += 1
        self.real.notify(n)

    def wait(self, timeout: float | None = None) -> bool:
        return self.real.wait(timeout)


@pytest.mark.parametrize("targeted", [True, False], ids=["as-written", "negative-control"])
def test_a_batch_wakes_each_waiting_caller_once(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch, targeted: bool
):
    committer = store._committer
    if not targeted:  # deliberately broken: every waiting caller is woken to look again
        real_wake_next = committer._wake_next

        def wake_all() -> None:
            real_wake_next()
            for work in list(committer._pending):
                if work.woken is not None:
                    work.woken.notify()

        monkeypatch.setattr(committer, "_wake_next", wake_all)
    entered, release = threading.Event(), threading.Event()

    def hold(_cur: Cursor) -> None:
        entered.set()
        release.wait(10)

    names = [f"q{n}" for n in range(12)]
    with ThreadPoolExecutor(len(names) + 1) as pool:
        holder = pool.submit(store._write, hold)
        assert entered.wait(10)
        callers = [pool.submit(store._write, audited_insert(store, name)) for name in names]
        wait_until(lambda: len(committer._pending) == len(names), "every caller to queue")
        counted = []
        with committer._lock:  # each caller is waiting on its condition by now
            for work in committer._pending:
                assert work.woken is not None
                wake = CountedWake(work.woken)
                work.woken = wake  # type: ignore[assignment]
                counted.append(wake)
        release.set()
        holder.result(10)
        assert [caller.result(30) for caller in callers] == names

    assert queue_rows(postgres_url) == dict.fromkeys(names, True)
    # The head of the queue is woken to lead the batch that holds all twelve, and each of
    # the other eleven once, when it is done.
    if targeted:
        assert [wake.sent for wake in counted] == [1] * len(names)
    else:
        assert sum(wake.sent for wake in counted) > len(names)
