"""SQLite has no notifications between processes; a subscriber of the SQLite store is
woken when another connection commits, so a worker does not wait for its next poll."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import surefoot as sf
from surefoot.errors import StoreError
from surefoot.store.sqlite import SQLiteStore, watch
from surefoot.store.sqlite.group_commit import GroupCommitter
from surefoot.store.sqlite.wal_events import WalEvents


def check_woken_by_the_other_store_only(tmp_path: Path) -> None:
    """Two stores on one file, as two processes: a subscriber of the first is not woken by
    its own store's commit, and is woken by the other's."""
    url = f"sqlite:///{tmp_path / 'wake.db'}"
    mine, theirs = SQLiteStore(url), SQLiteStore(url)  # two writing connections
    woken = threading.Event()
    try:
        now = datetime.now(UTC)
        mine.register_worker("w-mine", "host", 1, [], now)
        unsubscribe = mine.subscribe(woken.set)
        mine.worker_stopped("w-mine", now)  # its own commit
        assert not woken.wait(0.3)
        theirs.register_worker("w-theirs", "host", 2, [], now)
        assert woken.wait(10.0)
        unsubscribe()
    finally:
        mine.close()
        theirs.close()


def test_a_subscriber_is_woken_by_another_process_commit_but_not_by_its_own(tmp_path: Path):
    check_woken_by_the_other_store_only(tmp_path)


def watching(name: str) -> bool:
    """Whether a watch thread of the store file ``name`` runs (other tests' stores may
    still have theirs)."""
    return any(t.name == f"surefoot-watch-{name}" for t in threading.enumerate())


def test_the_last_unsubscribe_stops_the_watch_thread(tmp_path: Path):
    store = SQLiteStore(f"sqlite:///{tmp_path / 'unsubscribed.db'}")
    try:
        unsubscribe = store.subscribe(lambda: None)
        assert watching("unsubscribed.db")
        unsubscribe()
        assert not watching("unsubscribed.db")
    finally:
        store.close()


def test_closing_the_store_stops_the_watch_and_refuses_new_subscribers(tmp_path: Path):
    store = SQLiteStore(f"sqlite:///{tmp_path / 'closed.db'}")
    store.subscribe(lambda: None)
    store.close()
    assert not watching("closed.db")
    with pytest.raises(StoreError, match="closed"):
        store.subscribe(lambda: None)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


@linux_only
def test_a_commit_elsewhere_wakes_at_its_wal_write_not_at_the_next_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # With every poll pushed out of reach, only the write event on the WAL file (and the
    # close looks after it, while the commit becomes visible) can wake the subscriber.
    monkeypatch.setattr(watch, "MIN_INTERVAL_S", 60.0)
    monkeypatch.setattr(watch, "MAX_INTERVAL_S", 60.0)
    check_woken_by_the_other_store_only(tmp_path)


def test_without_wal_events_the_watcher_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(WalEvents, "open", classmethod(lambda cls, wal: None))
    check_woken_by_the_other_store_only(tmp_path)


@linux_only
def test_wal_events_are_given_up_when_the_file_goes(tmp_path: Path):
    assert WalEvents.open(tmp_path / "no-such-wal") is None
    wal = tmp_path / "x.db-wal"
    wal.write_bytes(b"")
    events = WalEvents.open(wal)
    assert events is not None
    try:
        with wal.open("ab") as written:
            written.write(b"frame")
        assert events.ready(5.0)
        assert events.drain()
        assert events.usable
        wal.unlink()
        events.ready(5.0)
        events.drain()
        assert not events.usable  # the watcher polls from then on
    finally:
        events.close()


def test_a_client_waiting_for_a_result_is_woken_by_another_process_commit(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'wake.db'}"
    client, other = sf.App("client", store=url), SQLiteStore(url)
    try:
        assert client.watch_store_changes()
        since = client.changes()
        other.register_worker("w-other", "host", 2, [], datetime.now(UTC))
        client.wait_for_change(10.0, since)  # returns once the commit is seen
        assert client.changes() != since
        client.wait_for_change(10.0, since)  # a change already counted: at once
    finally:
        client.close()
        other.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10.0
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.001)


class WatchedFile:
    """A file watched as a WAL file, with a stand-in for ``PRAGMA data_version`` (moved by
    the test, as another process's commit moves it) that counts the watcher's looks."""

    def __init__(self, directory: Path, waiting: Callable[[], bool] | None = None) -> None:
        directory.mkdir(exist_ok=True)
        self.wal = directory / "watched.db-wal"
        self.wal.write_bytes(b"")
        self.version = 0
        self.looks = 0
        self.woken = threading.Event()
        self.watcher = watch.ChangeWatcher(self._data_version, name="watched.db", wal=self.wal)
        self.watcher.subscribe(self.woken.set, waiting)

    def _data_version(self) -> int:
        self.looks += 1
        return self.version

    def __enter__(self) -> WatchedFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.watcher.close()


def looks_after_a_commit_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """The looks a watcher makes in the 0.1 s after it saw a commit whose last write it had
    not read yet (no timer can make it look: only a write of the file can)."""
    monkeypatch.setattr(watch, "MIN_INTERVAL_S", 60.0)
    monkeypatch.setattr(watch, "MAX_INTERVAL_S", 60.0)
    with WatchedFile(tmp_path) as watched, watched.wal.open("ab", buffering=0) as commit:
        first = watched.looks
        commit.write(b"first page")  # the watcher reads this write and looks closely
        wait_until(lambda: watched.looks >= first + 2, "close looks")
        commit.write(b"last page")  # left unread while it looks closely
        watched.version += 1  # the commit shows
        assert watched.woken.wait(10.0)
        seen = watched.looks
        time.sleep(0.1)
        return watched.looks - seen


@linux_only
def test_the_last_writes_of_a_commit_already_seen_set_off_no_close_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    assert looks_after_a_commit_is_seen(tmp_path, monkeypatch) == 0


@linux_only
def test_looks_after_a_seen_commit_negative_control(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: a watcher that leaves those writes unread takes them for a new
    # commit and looks every FINE_INTERVAL_S again, which the same count catches.
    monkeypatch.setattr(watch.ChangeWatcher, "_writes_left_unread", lambda _watcher, _events: False)
    assert looks_after_a_commit_is_seen(tmp_path, monkeypatch) > 0


def looks_for_own_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commits: int) -> int:
    """The looks a watching store makes while it commits ``commits`` times on its own, each
    commit a while after the last (no timer can make it look: only a write of the file)."""
    monkeypatch.setattr(watch, "MIN_INTERVAL_S", 60.0)
    monkeypatch.setattr(watch, "MAX_INTERVAL_S", 60.0)
    looks = [0]
    data_version = GroupCommitter.data_version

    def counted(committer: GroupCommitter) -> int | None:
        looks[0] += 1
        return data_version(committer)

    monkeypatch.setattr(GroupCommitter, "data_version", counted)
    store = SQLiteStore(f"sqlite:///{tmp_path / 'own.db'}")
    try:
        store.subscribe(lambda: None)
        before = looks[0]
        for index in range(commits):
            store.register_worker(f"w-{index}", "host", index, [], datetime.now(UTC))
            time.sleep(2 * watch.FINE_WINDOW_S)
        return looks[0] - before
    finally:
        store.close()


@linux_only
def test_the_process_own_commits_set_off_no_close_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    assert looks_for_own_commits(tmp_path, monkeypatch, commits=10) <= 30


@linux_only
def test_own_commit_looks_negative_control(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Negative control: a watcher not told of the process's own commits takes their writes
    # for another process's, and each sets off close looks.
    monkeypatch.setattr(GroupCommitter, "observe", lambda _committer, _observer: None)
    assert looks_for_own_commits(tmp_path, monkeypatch, commits=10) > 30


def looks_after_a_write_elsewhere(directory: Path, waiting: Callable[[], bool]) -> int:
    """The looks a watcher makes in the 0.1 s after another process's write whose commit
    does not show (no timer can make it look: only a write of the file)."""
    with WatchedFile(directory, waiting) as watched:
        first = watched.looks
        with watched.wal.open("ab", buffering=0) as commit:
            commit.write(b"a page")
        time.sleep(0.1)
        return watched.looks - first


@linux_only
def test_a_write_elsewhere_is_looked_at_closely_only_while_a_subscriber_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(watch, "MIN_INTERVAL_S", 60.0)
    monkeypatch.setattr(watch, "MAX_INTERVAL_S", 60.0)
    # A worker with no room for another run: one look at the write, then the next write.
    assert looks_after_a_write_elsewhere(tmp_path / "busy", lambda: False) == 1
    # The control: one that waits has the commit looked for every FINE_INTERVAL_S.
    assert looks_after_a_write_elsewhere(tmp_path / "waiting", lambda: True) > 1


def test_a_client_waits_for_news_only_while_it_waits_for_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    asked: list[Callable[[], bool]] = []

    def subscribe_changes(
        _store: SQLiteStore, _wake: Callable[[], None], *, waiting: Callable[[], bool] | None
    ) -> Callable[[], None]:
        assert waiting is not None
        asked.append(waiting)
        return lambda: None

    monkeypatch.setattr(SQLiteStore, "subscribe_changes", subscribe_changes)
    client = sf.App("client", store=f"sqlite:///{tmp_path / 'result.db'}")

    @client.workflow
    def unclaimed(ctx: sf.WorkflowContext) -> None:
        return None

    try:
        handle = client.start("unclaimed")

        def wait_for_result() -> None:
            with pytest.raises(sf.ResultTimeoutError):
                handle.result(timeout=1.0)

        waiting = threading.Thread(target=wait_for_result)
        waiting.start()
        wait_until(lambda: bool(asked) and asked[0](), "the client to wait")
        waiting.join()
        assert not asked[0]()
    finally:
        client.close()
