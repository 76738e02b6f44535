"""Group commit: concurrent write transactions share a COMMIT, yet each succeeds or fails
on its own, and none is acknowledged before its COMMIT."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from surefoot.errors import StoreError
from surefoot.store.sqlite.group_commit import GroupCommitter


class CountingCommitter(GroupCommitter):
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.batches: list[int] = []
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _attempt(self, conn: sqlite3.Connection, batch: list) -> None:  # type: ignore[type-arg]
        self.batches.append(len(batch))
        super()._attempt(conn, batch)


def connect_to(path: Path):
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    return connect


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "g.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    return path


def committer(db: Path) -> CountingCommitter:
    return CountingCommitter(
        connect_to(db), name="test", is_busy=lambda e: "locked" in str(e), busy_deadline_s=5
    )


def rows(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT k FROM t")}


def test_concurrent_writes_share_commits_and_a_failure_rolls_back_alone(db: Path):
    group = committer(db)
    results: dict[str, object] = {}

    def slow_first(cur: sqlite3.Cursor) -> str:
        cur.execute("INSERT INTO t VALUES ('first')")
        time.sleep(0.2)  # the others queue up meanwhile and go in one batch
        return "first"

    def write(key: str) -> None:
        def fn(cur: sqlite3.Cursor) -> str:
            cur.execute("INSERT INTO t VALUES (?)", (key,))
            if key.startswith("bad"):
                raise ValueError(key)
            return key

        try:
            results[key] = group.submit(fn)
        except ValueError as exc:
            results[key] = exc

    opener = threading.Thread(target=lambda: results.setdefault("first", group.submit(slow_first)))
    opener.start()
    time.sleep(0.05)
    keys = [f"ok{i}" for i in range(10)] + [f"bad{i}" for i in range(5)]
    threads = [threading.Thread(target=write, args=(k,)) for k in keys]
    for thread in threads:
        thread.start()
    for thread in [opener, *threads]:
        thread.join(10)
    group.close()

    assert rows(db) == {"first", *(k for k in keys if k.startswith("ok"))}
    assert all(results[k] == k for k in keys if k.startswith("ok"))
    assert all(isinstance(results[k], ValueError) for k in keys if k.startswith("bad"))
    assert len(group.batches) < 1 + len(keys)  # some transactions shared a COMMIT


def test_a_write_is_visible_to_other_connections_when_submit_returns(db: Path):
    group = committer(db)
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('x')"))
    assert rows(db) == {"x"}
    group.close()


def test_a_busy_database_is_waited_for_then_written(db: Path):
    group = committer(db)
    group.submit(lambda cur: None)  # the writer's connection exists before the lock is taken
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA busy_timeout=0")
    holder.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.3, holder.rollback)
    releaser.start()
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('after-wait')"))
    releaser.join()
    holder.close()
    group.close()
    assert rows(db) == {"after-wait"}


class SQLiteWaitsCommitter(GroupCommitter):
    """Negative control: the write lock left to SQLite's own busy handler (the writing
    connection keeps its busy timeout), which sleeps 1, 2, 5, 10 ms ... between looks."""

    def _begin_immediate(self, cur: sqlite3.Cursor) -> None:
        cur.execute("PRAGMA busy_timeout=5000")
        cur.execute("BEGIN IMMEDIATE")


def looks_for_a_held_lock(
    db: Path, kind: type[GroupCommitter], held_s: float, *, opened_by: str = "write"
) -> int:
    """How often the committer tried ``BEGIN IMMEDIATE`` while another connection held
    the write lock for ``held_s`` (each try is one statement on the writing connection)."""
    begins: list[str] = []

    def connect() -> sqlite3.Connection:
        conn: sqlite3.Connection = connect_to(db)()
        conn.set_trace_callback(
            lambda sql: begins.append(sql) if sql == "BEGIN IMMEDIATE" else None
        )
        return conn

    group = kind(connect, name="test", is_busy=lambda e: "locked" in str(e), busy_deadline_s=5)
    # The writer's connection exists before the lock is taken: opened by a write, or by
    # the change watcher asking for data_version first.
    if opened_by == "write":
        group.submit(lambda cur: None)
    else:
        assert group.data_version() is not None
    begins.clear()
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(held_s, holder.rollback)
    releaser.start()
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('after-wait')"))
    releaser.join()
    holder.close()
    group.close()
    assert rows(db) == {"after-wait"}
    return len(begins)


@pytest.mark.parametrize("opened_by", ["write", "data_version"])
def test_another_processs_write_lock_is_looked_for_again_within_a_millisecond(
    db: Path, opened_by: str
):
    # Held 0.3 s: pauses of at most 1 ms make about 300 looks, a loaded machine fewer;
    # SQLite's own handler makes 12 in that time (1+2+5+10+15+20+25+25+25+50+50+100 ms).
    assert looks_for_a_held_lock(db, GroupCommitter, 0.3, opened_by=opened_by) >= 40


def test_negative_control_sqlites_own_busy_handler_is_caught(db: Path):
    # The handler retries inside one statement: Python sees a single BEGIN IMMEDIATE.
    assert looks_for_a_held_lock(db, SQLiteWaitsCommitter, 0.3) < 40


def test_a_write_lock_held_past_the_busy_deadline_fails_the_write_and_keeps_the_data(db: Path):
    group = GroupCommitter(
        connect_to(db), name="test", is_busy=lambda e: "locked" in str(e), busy_deadline_s=0.2
    )
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('before')"))
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(StoreError, match="locked"):
        group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('refused')"))
    assert time.monotonic() - started >= 0.2
    holder.rollback()
    holder.close()
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('after')"))
    group.close()
    assert rows(db) == {"before", "after"}


def test_a_failed_commit_reaches_every_caller_of_the_batch(tmp_path: Path):
    def broken() -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    group = GroupCommitter(broken, name="t", is_busy=lambda e: False, busy_deadline_s=1)
    with pytest.raises(StoreError, match="disk I/O error"):
        group.submit(lambda cur: None)
    group.close()


def test_a_transaction_cannot_open_another_from_inside(db: Path):
    group = committer(db)

    def nested(cur: sqlite3.Cursor) -> None:
        group.submit(lambda inner: None)

    with pytest.raises(StoreError, match="cannot open another"):
        group.submit(nested)
    group.close()


# -- acknowledged means committed, under concurrency -------------------------------------------
class AcknowledgesBeforeCommit(GroupCommitter):
    """A broken committer for the negative control: it releases its callers with their
    batch still uncommitted and commits it only when the next batch starts."""

    def _attempt(self, conn: sqlite3.Connection, batch: list) -> None:  # type: ignore[type-arg]
        if conn.in_transaction:
            conn.commit()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        for work in batch:
            work.result, work.error = work.fn(cur), None


def unacknowledged_writes(group: GroupCommitter, db: Path, threads: int, each: int) -> list[str]:
    """Writes from many threads at once; each thread reads its row back through another
    connection the moment ``submit`` returns. Returns the rows that were not there."""
    missing: list[str] = []

    def writer(prefix: str) -> None:
        reader = sqlite3.connect(db)
        try:
            for i in range(each):
                key = f"{prefix}-{i}"

                def insert(cur: sqlite3.Cursor, key: str = key) -> None:
                    cur.execute("INSERT INTO t VALUES (?)", (key,))

                group.submit(insert)
                if reader.execute("SELECT 1 FROM t WHERE k = ?", (key,)).fetchone() is None:
                    missing.append(key)
        finally:
            reader.close()

    workers = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)
    return missing


def test_every_write_is_committed_when_its_submit_returns_under_concurrency(db: Path):
    group = committer(db)
    try:
        assert unacknowledged_writes(group, db, threads=8, each=40) == []
    finally:
        group.close()
    assert len(rows(db)) == 8 * 40
    assert len(group.batches) < 8 * 40  # callers that arrived together shared a COMMIT


def test_negative_control_a_committer_that_acknowledges_before_commit_is_caught(db: Path):
    group = AcknowledgesBeforeCommit(
        connect_to(db), name="broken", is_busy=lambda e: "locked" in str(e), busy_deadline_s=5
    )
    try:
        assert unacknowledged_writes(group, db, threads=2, each=5) != []
    finally:
        group.close()


def test_an_unloaded_write_runs_and_commits_on_the_callers_own_thread(db: Path):
    group = committer(db)
    seen: list[threading.Thread] = []

    def fn(cur: sqlite3.Cursor) -> None:
        seen.append(threading.current_thread())
        cur.execute("INSERT INTO t VALUES ('mine')")

    group.submit(fn)
    group.close()
    assert seen == [threading.current_thread()]
    assert rows(db) == {"mine"}


class SavepointlessCommitter(CountingCommitter):
    """Negative control: a failed item alone in its batch is not taken back, its writes
    before the failure committed."""

    def _undo(self, cur: sqlite3.Cursor, alone: bool, mark: object) -> None:
        if alone:
            cur.connection.commit()
        else:
            super()._undo(cur, alone, mark)


def fails_after_writing(cur: sqlite3.Cursor) -> None:
    cur.execute("INSERT INTO t VALUES ('half')")
    raise ValueError("refused after its first write")


def failed_alone_then_written(group: GroupCommitter, db: Path) -> set[str]:
    """A write that fails after writing, alone in its batch, then one that succeeds."""
    with pytest.raises(ValueError, match="refused"):
        group.submit(fails_after_writing)
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('next')"))
    group.close()
    return rows(db)


def test_a_write_failing_alone_in_its_batch_leaves_nothing_behind(db: Path):
    group = committer(db)
    assert failed_alone_then_written(group, db) == {"next"}
    assert group.batches == [1, 1]


def test_negative_control_a_failed_write_not_taken_back_is_caught(db: Path):
    group = SavepointlessCommitter(
        connect_to(db), name="test", is_busy=lambda e: "locked" in str(e), busy_deadline_s=5
    )
    assert failed_alone_then_written(group, db) != {"next"}


def test_a_write_alone_in_its_batch_sends_no_savepoint(db: Path):
    group = committer(db)
    sent: list[str] = []
    group.submit(lambda cur: cur.connection.set_trace_callback(sent.append))
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('x')"))
    group.close()
    assert sent[-3:] == ["BEGIN IMMEDIATE", "INSERT INTO t VALUES ('x')", "COMMIT"]
    assert rows(db) == {"x"}


def test_a_closed_committer_refuses_writes_and_commits_nothing(db: Path):
    group = committer(db)
    group.close()
    with pytest.raises(StoreError, match="closed"):
        group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('late')"))
    assert rows(db) == set()


def test_data_version_changes_for_other_connections_commits_only(db: Path):
    group = committer(db)
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('own')"))
    before = group.data_version()
    group.submit(lambda cur: cur.execute("INSERT INTO t VALUES ('own-again')"))
    assert group.data_version() == before  # its own commits do not count
    with sqlite3.connect(db) as other:
        other.execute("INSERT INTO t VALUES ('other')")
    assert group.data_version() != before
    group.close()


def synchronous_level(cur: sqlite3.Cursor) -> int:
    """The level this transaction commits with: 1 NORMAL, 2 FULL."""
    return int(cur.execute("PRAGMA synchronous").fetchone()[0])


def test_a_batch_waits_for_the_disk_unless_every_write_in_it_may_skip_the_wait(db: Path):
    group = committer(db)
    alone_lazy = group.submit(synchronous_level, flush=False)
    alone_durable = group.submit(synchronous_level)
    levels: dict[str, int] = {}

    entered = threading.Event()

    def slow_lazy(cur: sqlite3.Cursor) -> int:
        # The two below queue up meanwhile and go in the next batch, together.
        entered.set()
        deadline = time.monotonic() + 10
        while len(group._pending) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return synchronous_level(cur)

    def submit(key: str, flush: bool) -> None:
        levels[key] = group.submit(synchronous_level, flush=flush)

    opener = threading.Thread(
        target=lambda: levels.setdefault("opener", group.submit(slow_lazy, flush=False))
    )
    opener.start()
    assert entered.wait(10)
    mixed = [threading.Thread(target=submit, args=(k, k == "durable")) for k in ("lazy", "durable")]
    for thread in mixed:
        thread.start()
    for thread in [opener, *mixed]:
        thread.join(10)
    after = group.submit(synchronous_level, flush=False)
    group.close()

    assert (alone_lazy, alone_durable, after) == (1, 2, 1)
    assert levels["opener"] == 1
    assert group.batches[-2] == 2  # the lazy write and the durable one shared a batch ...
    assert levels["lazy"] == levels["durable"] == 2  # ... which waited for the disk
