"""SQLite has no notifications between processes; a subscriber of the SQLite store is
woken when another connection commits, so a worker does not wait for its next poll."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

import surefoot as sf
from surefoot.errors import StoreError
from surefoot.store.sqlite import SQLiteStore, watch
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
        assert events.wait(5.0)
        assert events.usable
        wal.unlink()
        events.wait(5.0)
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
