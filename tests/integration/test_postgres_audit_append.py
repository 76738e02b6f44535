"""The PostgreSQL audit chain: entries stored with their change, chained by a sweep.

A write transaction stores its audit entries, in order, with its ``COMMIT``, and never
touches the chain's head; a sweep locks the head and chains what is pending, shortly
after the commit and before any read of the log. These tests hold that to what the chain
promises: a write never waits for the head, an entry and the change it records commit
together or not at all, every committed entry reaches the chain (without a read, and
when the store that wrote it is gone), one transaction's entries stay consecutive and in
order when many writers and sweeps run at once, a sweep waits for whoever holds the head
(another sweep, or a worker of the previous release appending itself) and chains after it,
and the chain the server and Python compute is the same.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest

from surefoot.domain.audit import GENESIS, entry_row, verify_chain
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import AuditRecord, DeadLetter, NewRun
from surefoot.domain.status import DeadLetterStatus, RunStatus
from surefoot.errors import StoreError
from surefoot.store.base import RunEnd
from surefoot.store.migrations import load_migrations
from surefoot.store.postgres import PostgresStore, audit
from surefoot.store.postgres.base import Cursor, iso
from tests import postgres_support

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# How a worker of the release before schema 6 appends a transaction's entries: itself, in
# its transaction, under the head's lock (kept here to show the two releases share a chain).
_PREVIOUS_RELEASE_APPEND = f"""
WITH RECURSIVE
queued (at, actor, action, entity, entity_id, before, after, reason, correlation_id,
        prefix, n) AS (
    SELECT (e->>0)::timestamptz, e->>1, e->>2, e->>3, e->>4, e->>5, e->>6, e->>7, e->>8,
           e->>9, n
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS queued_rows (e, n)
),
head AS (SELECT seq, hash FROM audit_head WHERE only_row = 1 FOR UPDATE),
chain (n, seq, prev_hash, hash) AS (
    SELECT 0::bigint, COALESCE((SELECT seq FROM head), 0),
           NULL::text, COALESCE((SELECT hash FROM head), '{GENESIS}')
    UNION ALL
    SELECT q.n, c.seq + 1, c.hash,
           encode(sha256(convert_to(
               c.hash || E'\\n' || q.prefix || (c.seq + 1)::text || '}}', 'UTF8'
           )), 'hex')
    FROM chain AS c JOIN queued AS q ON q.n = c.n + 1
),
appended AS (
    INSERT INTO audit_log (seq, at, actor, action, entity, entity_id, before, after,
                           reason, correlation_id, prev_hash, hash)
    SELECT c.seq, q.at, q.actor, q.action, q.entity, q.entity_id, q.before, q.after,
           q.reason, q.correlation_id, c.prev_hash, c.hash
    FROM chain AS c JOIN queued AS q ON q.n = c.n
)
INSERT INTO audit_head (only_row, seq, hash)
SELECT 1, seq, hash FROM chain WHERE n > 0 ORDER BY n DESC LIMIT 1
ON CONFLICT (only_row) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
"""


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


def _head_is_locked(url: str) -> bool:
    """Whether another transaction holds the audit head's row lock right now."""
    with psycopg.connect(url) as conn:
        try:
            conn.execute("SELECT 1 FROM audit_head WHERE only_row = 1 FOR UPDATE NOWAIT")
        except psycopg.errors.LockNotAvailable:
            return True
        return False


def _counts(url: str) -> tuple[int, int]:
    """Rows pending and entries chained, read directly (no sweep)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT COUNT(*) FROM audit_pending), (SELECT COUNT(*) FROM audit_log)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _record(entity_id: str, action: str = "test.changed") -> AuditRecord:
    return AuditRecord("tester", action, "queue", entity_id, None, {"n": 1})


def _pause_queue(store: PostgresStore, queue: str, *, lock_head: bool = False) -> None:
    def txn(cur: Cursor) -> None:
        if lock_head:  # what every write did before: append to the chain itself
            cur.execute("SELECT seq FROM audit_head WHERE only_row = 1 FOR UPDATE")
        store._audit_txn(cur, _record(queue), T0)
        cur.execute(
            "INSERT INTO queues (queue, paused, changed_by, changed_at)"
            " VALUES (%s, TRUE, 'tester', %s)",
            (queue, T0),
        )

    store._write(txn)


@pytest.mark.parametrize("lock_head", [False, True], ids=["as-written", "negative-control"])
def test_a_write_does_not_wait_for_the_audit_head(
    store: PostgresStore, postgres_url: str, lock_head: bool
):
    with psycopg.connect(postgres_url) as holder:  # a sweep (or an old worker) holds it
        holder.execute("SELECT seq FROM audit_head WHERE only_row = 1 FOR UPDATE")
        writer = threading.Thread(
            target=_pause_queue, args=(store, "q1"), kwargs={"lock_head": lock_head}
        )
        writer.start()
        writer.join(2.0)
        finished_while_held = not writer.is_alive()
        holder.rollback()
    writer.join(10.0)

    assert finished_while_held is not lock_head
    [entry] = store.audit_entries(after_seq=0, limit=10)
    assert (entry.action, entry.entity_id) == ("test.changed", "q1")
    assert store.audit_head() == (entry.seq, entry.hash)
    assert not _head_is_locked(postgres_url)


@pytest.mark.parametrize("queue", ["allowed", "forbidden"])
def test_a_change_whose_audit_entry_cannot_be_stored_is_not_committed(
    store: PostgresStore, postgres_url: str, queue: str
):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE audit_pending ADD CONSTRAINT no_forbidden"
            " CHECK (NOT jsonb_path_exists(entries, '$[*][4] ? (@ == \"forbidden\")'))"
        )

    if queue == "forbidden":
        with pytest.raises(StoreError) as caught:
            store.set_queue_paused(queue, paused=True, actor="tester", reason=None, now=T0)
        assert isinstance(caught.value.__cause__, psycopg.errors.CheckViolation)
        assert store.list_queues() == []  # the queue row rolled back with its entry
        assert store.audit_head() is None
    else:  # the control: the same write with an acceptable entry commits both
        store.set_queue_paused(queue, paused=True, actor="tester", reason=None, now=T0)
        assert store.list_queues() == [("allowed", True, 0)]
        [entry] = store.audit_entries(after_seq=0, limit=10)
        assert (entry.action, entry.entity_id) == ("queue.paused", "allowed")
    assert _counts(postgres_url)[0] == 0
    assert not _head_is_locked(postgres_url)


@pytest.mark.parametrize("sweeper", ["running", "stopped"], ids=["as-written", "negative-control"])
def test_a_committed_entry_reaches_the_chain_without_a_read(
    store: PostgresStore, postgres_url: str, sweeper: str
):
    if sweeper == "stopped":
        store._sweeper.stop()
    _pause_queue(store, "q1")

    deadline = time.monotonic() + 5.0
    while _counts(postgres_url) != (0, 1) and time.monotonic() < deadline:
        time.sleep(0.02)

    assert _counts(postgres_url) == ((0, 1) if sweeper == "running" else (1, 0))


@pytest.mark.parametrize(
    "closing", ["sweeps", "does-not-sweep"], ids=["as-written", "negative-control"]
)
def test_a_store_closed_right_after_a_write_chains_its_entries_as_it_closes(
    postgres_url: str, closing: str
):
    closed = PostgresStore(postgres_url)
    closed._sweeper._delay_s = 60.0  # its sweeper would come long after the close
    if closing == "does-not-sweep":
        closed._sweeper.stop = lambda: False  # type: ignore[method-assign]
    _pause_queue(closed, "q1")  # a command that writes and exits at once
    closed.close()

    assert _counts(postgres_url) == ((0, 1) if closing == "sweeps" else (1, 0))


@pytest.mark.parametrize(
    "reader", ["sweeps", "does-not-sweep"], ids=["as-written", "negative-control"]
)
def test_entries_left_pending_by_a_store_that_died_are_chained_before_any_read(
    postgres_url: str, reader: str
):
    dead = PostgresStore(postgres_url)
    dead._sweeper.poke = lambda: None  # type: ignore[method-assign]  # died before its sweep
    for queue in ("q1", "q2"):
        _pause_queue(dead, queue)
    dead.close()
    assert _counts(postgres_url) == (2, 0)

    other = PostgresStore(postgres_url)
    try:
        if reader == "does-not-sweep":
            other._sweep_audit = lambda: None  # type: ignore[method-assign]
        entries = other.audit_entries(after_seq=0, limit=10)
        head = other.audit_head()
    finally:
        other.close()

    if reader == "does-not-sweep":
        assert entries == []
        assert head is None
        return
    assert [(e.seq, e.entity_id) for e in entries] == [(1, "q1"), (2, "q2")]
    assert head is not None
    assert verify_chain(entries, head_seq=head[0], head_hash=head[1]) == []


def _sweep_on_a_thread(store: PostgresStore) -> tuple[threading.Thread, list[BaseException | None]]:
    """A sweep of ``store`` started on a thread of its own, and where its outcome goes once
    it ends (None: it swept; else the store's error)."""
    outcome: list[BaseException | None] = []

    def sweep() -> None:
        try:
            store._sweep_audit()
            outcome.append(None)
        except StoreError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=sweep)
    thread.start()
    return thread, outcome


def _chained_as(
    store: PostgresStore, outcome: list[BaseException | None], expected: list[tuple[int, str]]
) -> bool:
    """Whether the sweep succeeded and the chain holds exactly ``expected`` (seq, entity
    id), linked up to its head."""
    entries = store.audit_entries(after_seq=0, limit=10) if outcome == [None] else []
    head = store.audit_head()
    return (
        outcome == [None]
        and [(e.seq, e.entity_id) for e in entries] == expected
        and head is not None
        and verify_chain(entries, head_seq=head[0], head_hash=head[1]) == []
    )


def _create_unlocked_sweep(url: str) -> str:
    """Deliberately broken: the schema's sweep, reading the head without locking it; its
    statement."""
    sql = next(m.sql for m in load_migrations("postgres") if m.version == 6)
    function = sql[sql.index("CREATE FUNCTION") :]
    locked = "FROM audit_head WHERE only_row = 1 FOR UPDATE;"
    assert locked in function
    function = function.replace(locked, "FROM audit_head WHERE only_row = 1;").replace(
        "surefoot_audit_sweep(", "unlocked_audit_sweep("
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(function)
    return "SELECT unlocked_audit_sweep(500) AS taken"


@pytest.mark.parametrize("lock", ["head", "none"], ids=["as-written", "negative-control"])
def test_a_sweep_waits_for_the_sweep_holding_the_head_and_chains_after_it(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch, lock: str
):
    if lock == "none":
        monkeypatch.setattr(audit, "SWEEP_SQL", _create_unlocked_sweep(postgres_url))
    store._sweeper.stop()  # sweeps only where this test sends them
    _pause_queue(store, "q1")

    with psycopg.connect(postgres_url) as first:  # a sweep, its transaction still open
        assert first.execute(audit.SWEEP_SQL).fetchone() == (1,)
        _pause_queue(store, "q2")  # committed while the first sweep holds the head
        second, outcome = _sweep_on_a_thread(store)
        second.join(0.5)
        first.commit()
    second.join(10.0)

    intact = _chained_as(store, outcome, [(1, "q1"), (2, "q2")])
    assert intact is (lock == "head")


def test_sweeps_running_at_once_keep_one_chain(postgres_url: str):
    stores = [PostgresStore(postgres_url) for _ in range(4)]
    per_store = 25
    start = threading.Barrier(len(stores))

    def work(index: int) -> None:
        opened = stores[index]
        opened._sweeper.poke = lambda: None  # type: ignore[method-assign]  # sweep here only
        start.wait()
        for n in range(per_store):
            _pause_queue(opened, f"s{index}-{n}")
            opened._sweep_audit()

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(work, range(len(stores))))
        reader = stores[0]
        entries = reader.audit_entries(after_seq=0, limit=1_000)
        head = reader.audit_head()
    finally:
        for opened in stores:
            opened.close()

    total = len(stores) * per_store
    assert [e.seq for e in entries] == list(range(1, total + 1))
    assert len({e.entity_id for e in entries}) == total  # each entry chained once
    assert head is not None
    assert verify_chain(entries, head_seq=head[0], head_hash=head[1]) == []


def test_a_transactions_entries_are_consecutive_and_chained_under_contention(
    store: PostgresStore,
):
    writers, per_writer, entries_per_txn = 6, 15, 3
    start = threading.Barrier(writers)

    def writer(w: int) -> None:
        start.wait()
        for n in range(per_writer):

            def txn(cur: Cursor, n: int = n) -> None:
                for part in range(entries_per_txn):
                    store._audit_txn(cur, _record(f"w{w}-t{n}", f"part.{part}"), T0)
                    cur.execute("SELECT pg_sleep(0.001)")  # interleave with other writers

            store._write(txn)

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(writer, range(writers)))

    entries = store.audit_entries(after_seq=0, limit=10_000)
    total = writers * per_writer * entries_per_txn
    assert [e.seq for e in entries] == list(range(1, total + 1))
    head = store.audit_head()
    assert head is not None
    assert verify_chain(entries, head_seq=head[0], head_hash=head[1]) == []
    for first in range(0, total, entries_per_txn):
        group = entries[first : first + entries_per_txn]
        assert len({e.entity_id for e in group}) == 1, "one transaction's entries interleaved"
        assert [e.action for e in group] == [f"part.{p}" for p in range(entries_per_txn)]


def test_an_audit_entry_outside_a_write_transaction_is_refused(store: PostgresStore):
    with pytest.raises(StoreError, match="write transaction"):
        store._read(lambda cur: store._audit_txn(cur, _record("q1"), T0))


@pytest.mark.parametrize("reason", ["allowed", "forbidden"])
def test_a_run_end_whose_deferred_write_fails_commits_nothing(
    store: PostgresStore, postgres_url: str, reason: str
):
    """finish_run sends its writes with COMMIT; one failing must undo the others too."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE dead_letters ADD CONSTRAINT no_forbidden CHECK (reason <> 'forbidden')"
        )
    run, _ = store.create_run(
        NewRun(run_id="r1", workflow="flow", queue="default", inputs="{}", inputs_hash="h"),
        T0,
        "tester",
    )
    (claimed,) = store.claim("w", workflows=["flow"], queues=None, limit=1, lease_s=30, now=T0)
    head = store.audit_head()
    dead = DeadLetter(
        run.run_id, 0, "flow", FailureClass.PERMANENT, reason, 1, DeadLetterStatus.OPEN, T0
    )
    end = RunEnd(RunStatus.FAILED, error='"boom"', dead_letter=dead)

    if reason == "forbidden":
        with pytest.raises(StoreError) as caught:
            store.finish_run(claimed.lease, end, T0)
        assert isinstance(caught.value.__cause__, psycopg.errors.CheckViolation)
        after = store.get_run(run.run_id)
        assert after is not None
        assert (after.status, after.lease_owner) == (RunStatus.RUNNING, "w")
        assert store.audit_head() == head  # no entry for the end that did not happen
    else:  # the control: the same end with an acceptable dead letter commits it all
        store.finish_run(claimed.lease, end, T0)
        after = store.get_run(run.run_id)
        assert after is not None
        assert (after.status, after.lease_owner) == (RunStatus.FAILED, None)
        assert store.audit_entries(after_seq=0, limit=10)[-1].action == "run.finished"
    assert not _head_is_locked(postgres_url)


AWKWARD = [
    AuditRecord(
        "opérateur ☃",
        "run.note",
        "run",
        'id with "quotes", \\backslashes\\ and a\nnewline',
        None,
        {"text": 'naïve "café" \\ \u2028 😀', "n": 1.5, "none": None, "list": [1, "two"]},
        reason="line one\nline two\ttabbed \\n not a newline",
        correlation_id=None,
    ),
    AuditRecord(
        "tester",
        "queue.paused",
        "queue",
        "q-1",
        {"paused": False},
        {"paused": True},
        reason=None,
        correlation_id="corr-1",
    ),
]


def test_entries_with_any_text_are_stored_exactly_and_chain_as_python_computes(
    store: PostgresStore,
):
    # Entries travel to the server as one JSON parameter: every text comes back as written,
    # absent values stay NULL, the times keep their microseconds, and the server's hashes
    # are the ones Python computes.
    times = [T0.replace(microsecond=123456), T0.replace(second=1, microsecond=7)]

    def txn(cur: Cursor) -> None:
        for record, at in zip(AWKWARD, times, strict=True):
            store._audit_txn(cur, record, at)

    store._write(txn)

    entries = store.audit_entries(after_seq=0, limit=100)
    assert len(entries) == len(AWKWARD)
    for entry, record, at in zip(entries, AWKWARD, times, strict=True):
        assert (entry.actor, entry.action, entry.entity, entry.entity_id) == (
            record.actor,
            record.action,
            record.entity,
            record.entity_id,
        )
        assert (entry.before, entry.after) == (record.before, record.after)
        assert (entry.reason, entry.correlation_id) == (record.reason, record.correlation_id)
        assert datetime.fromisoformat(entry.at) == at
    head = store.audit_head()
    assert head is not None
    assert verify_chain(entries, head_seq=head[0], head_hash=head[1]) == []


@pytest.mark.parametrize("lock", ["head", "none"], ids=["as-written", "negative-control"])
def test_entries_of_a_worker_of_the_previous_release_and_swept_ones_form_one_chain(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch, lock: str
):
    if lock == "none":
        monkeypatch.setattr(audit, "SWEEP_SQL", _create_unlocked_sweep(postgres_url))
    store._sweeper.stop()  # sweeps only where this test sends them
    _pause_queue(store, "new-1")

    with psycopg.connect(postgres_url) as old:  # its transaction holds the head until commit
        old.execute(_PREVIOUS_RELEASE_APPEND, (json.dumps([entry_row(_record("old-1"), iso(T0))]),))
        sweeping, outcome = _sweep_on_a_thread(store)
        sweeping.join(0.5)
        old.commit()
    sweeping.join(10.0)
    with psycopg.connect(postgres_url) as old:
        old.execute(_PREVIOUS_RELEASE_APPEND, (json.dumps([entry_row(_record("old-2"), iso(T0))]),))

    intact = _chained_as(store, outcome, [(1, "old-1"), (2, "new-1"), (3, "old-2")])
    assert intact is (lock == "head")


@pytest.mark.parametrize(
    "reason", ["text", "lone surrogate \udc80"], ids=["control", "not-unicode"]
)
def test_an_entry_with_text_that_is_not_unicode_fails_its_write_and_commits_nothing(
    store: PostgresStore, postgres_url: str, reason: str
):
    # The server refuses the entry (its JSON holds an escape no text can hold): the
    # caller gets a StoreError and neither the change nor the entry is committed.
    def txn(cur: Cursor) -> None:
        cur.execute("INSERT INTO queues (queue, paused) VALUES ('q1', true)")
        store._audit_txn(
            cur, AuditRecord("tester", "test.changed", "queue", "q1", None, None, reason=reason), T0
        )

    if reason == "text":
        store._write(txn)
        assert store.list_queues() == [("q1", True, 0)]
        return
    with pytest.raises(StoreError) as caught:
        store._write(txn)
    assert isinstance(caught.value.__cause__, psycopg.Error)
    assert store.list_queues() == []
    assert _counts(postgres_url)[0] == 0
    assert store.audit_head() is None
