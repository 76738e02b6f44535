"""SQLite has no notifications between processes; a subscriber of the SQLite store is
woken when another connection commits, so a worker does not wait for its next poll."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from surefoot.errors import StoreError
from surefoot.store.sqlite import SQLiteStore


def test_a_subscriber_is_woken_by_another_process_commit_but_not_by_its_own(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'wake.db'}"
    mine, theirs = SQLiteStore(url), SQLiteStore(url)  # two writing connections, as two processes
    woken = threading.Event()
    try:
        now = datetime.now(UTC)
        mine.register_worker("w-mine", "host", 1, [], now)
        unsubscribe = mine.subscribe(woken.set)
        mine.worker_stopped("w-mine", now)  # its own commit
        assert not woken.wait(0.3)
        theirs.register_worker("w-theirs", "host", 2, [], now)
        assert woken.wait(2.0)
        unsubscribe()
    finally:
        mine.close()
        theirs.close()


def test_the_last_unsubscribe_stops_the_watch_thread(tmp_path: Path):
    store = SQLiteStore(f"sqlite:///{tmp_path / 'wake.db'}")
    try:
        unsubscribe = store.subscribe(lambda: None)
        assert any(t.name.startswith("surefoot-watch-") for t in threading.enumerate())
        unsubscribe()
        assert not any(t.name.startswith("surefoot-watch-") for t in threading.enumerate())
    finally:
        store.close()


def test_closing_the_store_stops_the_watch_and_refuses_new_subscribers(tmp_path: Path):
    store = SQLiteStore(f"sqlite:///{tmp_path / 'wake.db'}")
    store.subscribe(lambda: None)
    store.close()
    assert not any(t.name.startswith("surefoot-watch-") for t in threading.enumerate())
    with pytest.raises(StoreError, match="closed"):
        store.subscribe(lambda: None)
