"""The PostgreSQL audit append: the chain's head is locked only at the end of a write.

A write transaction queues its audit entries and appends them, with the head, as its
last statements before ``COMMIT``. These tests hold that to what the chain promises:
the head is not held while the rest of the transaction runs, an entry and the change it
records commit together or not at all, and one transaction's entries stay consecutive
and linked in commit order when many writers append at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pytest

from surefoot.domain.audit import verify_chain
from surefoot.domain.failures import FailureClass
from surefoot.domain.records import AuditRecord, DeadLetter, NewRun
from surefoot.domain.status import DeadLetterStatus, RunStatus
from surefoot.errors import StoreError
from surefoot.store.base import RunEnd
from surefoot.store.postgres import PostgresStore
from surefoot.store.postgres.base import Cursor
from tests import postgres_support

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


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


def _record(entity_id: str, action: str = "test.changed") -> AuditRecord:
    return AuditRecord("tester", action, "queue", entity_id, None, {"n": 1})


@pytest.mark.parametrize("early_lock", [False, True], ids=["as-written", "negative-control"])
def test_the_audit_head_is_not_held_while_the_rest_of_a_write_runs(
    store: PostgresStore, postgres_url: str, early_lock: bool
):
    seen: list[bool] = []

    def txn(cur: Cursor) -> None:
        if early_lock:  # what every append did before: lock the head at once
            cur.execute("SELECT seq FROM audit_head WHERE only_row = 1 FOR UPDATE")
        store._audit_txn(cur, _record("q1"), T0)
        cur.execute(
            "INSERT INTO queues (queue, paused, changed_by, changed_at)"
            " VALUES ('q1', TRUE, 'tester', %s)",
            (T0,),
        )
        seen.append(_head_is_locked(postgres_url))  # a statement after the append

    store._write(txn)

    assert seen == [early_lock]
    assert not _head_is_locked(postgres_url)  # released at commit
    [entry] = store.audit_entries(after_seq=0, limit=10)
    assert (entry.action, entry.entity_id) == ("test.changed", "q1")
    assert store.audit_head() == (entry.seq, entry.hash)


@pytest.mark.parametrize("queue", ["allowed", "forbidden"])
def test_a_change_whose_audit_entry_cannot_be_appended_is_not_committed(
    store: PostgresStore, postgres_url: str, queue: str
):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE audit_log ADD CONSTRAINT no_forbidden CHECK (entity_id <> 'forbidden')"
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
    assert not _head_is_locked(postgres_url)


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
