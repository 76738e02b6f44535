"""The audit chain's head and new entries are carried in memory through a write batch on
SQLite, and the chain stays whole and true however the batch goes: items rolled back to
their savepoints, a batch retried after losing the lock, and a batch whose COMMIT fails."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from surefoot.domain.audit import verify_chain
from surefoot.domain.records import AuditRecord
from surefoot.errors import StoreError
from surefoot.store.sqlite import SQLiteStore
from surefoot.store.sqlite.audit_chain import AuditAppender


class RefusedError(Exception):
    pass


class ForgetfulAppender(AuditAppender):
    """Negative control: neither the head nor the entries are taken back when an item is
    rolled back."""

    def rollback_to(self, mark: object) -> None:
        pass


class HeadOnlyAppender(AuditAppender):
    """Negative control: takes the head back when an item is rolled back, not the entries
    it appended (they would be inserted with the batch's COMMIT)."""

    def rollback_to(self, mark: object) -> None:
        entries = list(self._entries)
        super().rollback_to(mark)
        self._entries = entries


class EntriesOnlyAppender(AuditAppender):
    """Negative control: drops a rolled-back item's entries, not its move of the head."""

    def rollback_to(self, mark: object) -> None:
        head, dirty = self._head, self._dirty
        super().rollback_to(mark)
        self._head, self._dirty = head, dirty


def open_store(path: Path, appender: AuditAppender | None = None) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{path}")
    if appender is not None:  # swapped before the first write batch
        store._audit = appender
        store._committer._hooks = appender
    return store


def record(name: str) -> AuditRecord:
    return AuditRecord("test", "test.write", "thing", name, None, {"name": name})


def audited(
    store: SQLiteStore, name: str, *, entries: int, fail: bool
) -> Callable[[sqlite3.Cursor], None]:
    """A write appending ``entries`` entries, then refused if it must ``fail``."""

    def txn(cur: sqlite3.Cursor) -> None:
        for n in range(entries):
            store._audit_txn(cur, record(f"{name}.{n}"), datetime.now(UTC))
        if fail:
            raise RefusedError(name)

    return txn


def audited_write(store: SQLiteStore, name: str, *, entries: int, fail: bool) -> None:
    store._write(audited(store, name, entries=entries, fail=fail))


def chain_problems(store: SQLiteStore) -> list[str]:
    entries = store.audit_entries(after_seq=0, limit=10_000)
    head = store.audit_head()
    problems = verify_chain(
        entries, head_seq=head[0] if head else None, head_hash=head[1] if head else None
    )
    return [problem.problem for problem in problems]


def in_one_batch(
    store: SQLiteStore, writes: dict[str, Callable[[sqlite3.Cursor], object]]
) -> dict[str, object]:
    """``writes`` by name, each on its own thread, queued behind a slow write so that they
    go in one batch; what each returned ("ok") or raised."""
    outcomes: dict[str, object] = {}

    def slow(cur: sqlite3.Cursor) -> None:
        store._audit_txn(cur, record("slow"), datetime.now(UTC))
        time.sleep(0.2)  # the others queue up meanwhile

    def write(name: str, fn: Callable[[sqlite3.Cursor], object]) -> None:
        try:
            store._write(fn)
            outcomes[name] = "ok"
        except Exception as exc:  # kept for the test to judge
            outcomes[name] = exc

    opener = threading.Thread(target=lambda: store._write(slow))
    opener.start()
    time.sleep(0.05)
    threads = [threading.Thread(target=write, args=item) for item in writes.items()]
    for thread in threads:
        thread.start()
    for thread in [opener, *threads]:
        thread.join(10)
    return outcomes


def one_batch_with_failures(store: SQLiteStore) -> dict[str, object]:
    """Writes that go in one batch, every third refused after appending its entries."""
    return in_one_batch(
        store, {f"w{i}": audited(store, f"w{i}", entries=2, fail=i % 3 == 1) for i in range(12)}
    )


def batch_problems(store: SQLiteStore, outcomes: dict[str, object]) -> list[str]:
    """What is wrong after ``one_batch_with_failures``: the chain broken, a write failed
    that should not have, or the entries kept are not exactly those of the writes kept."""
    problems = chain_problems(store)
    expected = {f"w{i}": "refused" if i % 3 == 1 else "ok" for i in range(12)}
    got = {
        name: "refused" if isinstance(outcome, RefusedError) else str(outcome)
        for name, outcome in outcomes.items()
    }
    if got != expected:
        problems.append(f"outcomes {got}")
    written = [e.entity_id for e in store.audit_entries(after_seq=0, limit=1000)]
    kept = sorted(name for name, outcome in got.items() if outcome == "ok")
    if sorted({n.split(".")[0] for n in written if n != "slow"}) != kept:
        problems.append(f"entries of {sorted(set(written))} for writes {kept}")
    head = store.audit_head()
    if head is None or head[0] != 1 + 2 * len(kept) or head[0] != len(written):
        problems.append(f"head {head} after {len(written)} entries")
    return problems


def test_items_rolled_back_in_a_batch_leave_the_chain_whole(tmp_path: Path):
    store = open_store(tmp_path / "a.db")
    try:
        outcomes = one_batch_with_failures(store)
        assert batch_problems(store, outcomes) == []
    finally:
        store.close()


@pytest.mark.parametrize("appender", [ForgetfulAppender, HeadOnlyAppender, EntriesOnlyAppender])
def test_check_catches_an_appender_that_does_not_take_an_item_back(
    tmp_path: Path, appender: type[AuditAppender]
):
    # Negative controls: the same batch, with an appender that forgets to take back the
    # head, the entries, or both, of the items rolled back: the check above must see it.
    store = open_store(tmp_path / "b.db", appender())
    try:
        outcomes = one_batch_with_failures(store)
        assert batch_problems(store, outcomes) != []
    finally:
        store.close()


def test_a_batch_retried_after_losing_the_lock_reads_the_head_again(tmp_path: Path):
    store = open_store(tmp_path / "c.db")
    calls = 0

    def loses_the_lock_once(cur: sqlite3.Cursor) -> None:
        nonlocal calls
        calls += 1
        for n in range(3):
            store._audit_txn(cur, record(f"after.{n}"), datetime.now(UTC))
        if calls == 1:  # as SQLite reports a lock lost mid-transaction: all is retried
            raise sqlite3.OperationalError("database is locked")

    try:
        audited_write(store, "before", entries=1, fail=False)
        store._write(loses_the_lock_once)
        assert calls == 2
        assert chain_problems(store) == []
        head = store.audit_head()
        assert head is not None
        assert head[0] == 4
    finally:
        store.close()


def test_a_failed_commit_leaves_no_head_behind_for_the_next_batch(tmp_path: Path):
    store = open_store(tmp_path / "d.db")
    try:
        audited_write(store, "first", entries=1, fail=False)
        real_commit = store._committer._hooks.before_commit

        def failing_before_commit(cur: sqlite3.Cursor) -> None:
            real_commit(cur)
            raise sqlite3.OperationalError("disk I/O error")

        store._committer._hooks.before_commit = failing_before_commit  # type: ignore[method-assign]
        with pytest.raises(StoreError, match="disk I/O error"):
            audited_write(store, "lost", entries=2, fail=False)
        store._committer._hooks.before_commit = real_commit  # type: ignore[method-assign]
        audited_write(store, "next", entries=1, fail=False)
        assert chain_problems(store) == []
        assert [e.entity_id for e in store.audit_entries(after_seq=0, limit=10)] == [
            "first.0",
            "next.0",
        ]
    finally:
        store.close()


def test_an_entry_the_table_would_refuse_fails_its_own_write_not_the_batch(tmp_path: Path):
    store = open_store(tmp_path / "e.db")

    def write(name: str, actor: object) -> Callable[[sqlite3.Cursor], None]:
        entry = AuditRecord(actor, "test.write", "thing", name)  # type: ignore[arg-type]
        return lambda cur: store._audit_txn(cur, entry, datetime.now(UTC))

    try:
        outcomes = in_one_batch(
            store, {f"w{i}": write(f"w{i}", None if i == 2 else "test") for i in range(5)}
        )
        assert isinstance(outcomes.pop("w2"), TypeError)
        assert set(outcomes.values()) == {"ok"}
        written = [e.entity_id for e in store.audit_entries(after_seq=0, limit=100)]
        assert sorted(written) == ["slow", "w0", "w1", "w3", "w4"]
        assert chain_problems(store) == []
    finally:
        store.close()


def test_an_entry_appended_outside_a_write_batch_is_refused(tmp_path: Path):
    # Entries wait for their batch's COMMIT: one appended in a read (or on any other
    # connection) would never be written, or be written with another batch.
    store = open_store(tmp_path / "f.db")
    try:
        audited_write(store, "first", entries=1, fail=False)
        with pytest.raises(StoreError, match="only inside a write batch"):
            store._read(lambda cur: store._audit_txn(cur, record("stray"), datetime.now(UTC)))
        audited_write(store, "next", entries=1, fail=False)
        assert [e.entity_id for e in store.audit_entries(after_seq=0, limit=10)] == [
            "first.0",
            "next.0",
        ]
        assert chain_problems(store) == []
    finally:
        store.close()
