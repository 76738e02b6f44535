"""A store that cannot be opened is a typed error, and the file on disk is left as it was."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import surefoot as sf
from surefoot.errors import (
    SchemaOutdatedError,
    SchemaTooNewError,
    StoreUnavailableError,
    StoreUrlError,
)
from surefoot.store.base import SCHEMA_VERSION
from surefoot.store.open import open_store
from surefoot.store.sqlite import SQLiteStore
from surefoot.store.sqlite.base import check_sqlite_library


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def completed_store(path: Path) -> str:
    """A store file holding one succeeded run, closed so that the WAL is checkpointed."""
    url = f"sqlite:///{path}"
    app = sf.App("seed", store=url, instant_retries=True, poll_interval_s=0.02)

    @app.workflow
    def hello(ctx: sf.WorkflowContext, name: str) -> str:
        return f"hello {name}"

    with sf.Worker(app):
        assert app.start(hello, "acme").result(timeout=10) == "hello acme"
    app.close()
    return url


def test_missing_directory_is_store_unavailable_and_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'missing' / 'surefoot.db'}"
    app = sf.App("x", store=url)

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> None: ...

    with pytest.raises(StoreUnavailableError, match="does not exist"):
        app.start(flow)
    with pytest.raises(StoreUnavailableError):
        open_store(url)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/surefoot", "unknown store URL scheme 'mysql'"),
        ("surefoot.db", "unknown store URL scheme ''"),
        ("sqlite:///:memory:", "in-memory SQLite store"),
        ("sqlite://", "in-memory SQLite store"),
        ("sqlite://:memory:", "no host"),
        ("sqlite://server/surefoot.db", "no host"),
    ],
)
def test_unusable_store_url_is_a_store_url_error(url, message):
    with pytest.raises(StoreUrlError, match=message):
        open_store(url)


def test_unreachable_postgresql_server_is_store_unavailable():
    with pytest.raises(StoreUnavailableError, match="cannot reach"):
        open_store("postgresql://127.0.0.1:1/surefoot")


def test_store_url_error_is_a_config_error():
    assert issubclass(StoreUrlError, sf.ConfigError)


def test_app_with_a_bad_store_url_fails_on_first_use_with_the_typed_error():
    app = sf.App("x", store="mysql://db/surefoot")

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> None: ...

    with pytest.raises(StoreUrlError):
        app.start(flow)


@pytest.mark.parametrize(
    "content",
    [b"this is not a database, just text\n" * 200, bytes(range(256)) * 64],
)
def test_file_that_is_not_sqlite_is_store_unavailable_and_left_unchanged(tmp_path, content):
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(StoreUnavailableError, match=r"notes\.db"):
        SQLiteStore(f"sqlite:///{path}")
    assert files(tmp_path) == {"notes.db": content}


def test_database_of_another_application_is_not_taken_over_without_migration(tmp_path):
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('acme')")
        conn.commit()
    before = rows(path)
    with pytest.raises(SchemaOutdatedError, match="surefoot db upgrade"):
        SQLiteStore(f"sqlite:///{path}", auto_migrate=False)
    assert rows(path) == before


def test_store_written_by_a_newer_schema_is_refused_and_unchanged(tmp_path):
    path = tmp_path / "surefoot.db"
    url = completed_store(path)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "INSERT INTO surefoot_schema (version, name, applied_at) VALUES (?, ?, ?)",
            (SCHEMA_VERSION + 1, "9999_future.sql", "2031-01-01T00:00:00+00:00"),
        )
        conn.commit()
    before_files = files(tmp_path)
    before_rows = rows(path)

    with pytest.raises(SchemaTooNewError, match=f"schema {SCHEMA_VERSION + 1}"):
        SQLiteStore(url)
    app = sf.App("reader", store=url)
    with pytest.raises(SchemaTooNewError):
        app.store  # noqa: B018 - opening the store is the operation under test
    with pytest.raises(SchemaTooNewError):
        SQLiteStore(url, auto_migrate=False)

    assert files(tmp_path)["surefoot.db"] == before_files["surefoot.db"]
    assert rows(path) == before_rows


def test_old_store_with_auto_migrate_off_is_schema_outdated_and_unchanged(tmp_path):
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE surefoot_schema "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.commit()
    before = rows(path)
    with pytest.raises(SchemaOutdatedError, match=f"schema 0; this code needs {SCHEMA_VERSION}"):
        SQLiteStore(f"sqlite:///{path}", auto_migrate=False)
    app = sf.App("strict", store=f"sqlite:///{path}", auto_migrate=False)
    with pytest.raises(SchemaOutdatedError):
        app.store  # noqa: B018 - opening the store is the operation under test
    assert rows(path) == before


def test_old_store_is_migrated_when_auto_migrate_is_on(tmp_path):
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()


def test_current_store_opens_with_auto_migrate_off_and_keeps_its_runs(tmp_path):
    path = tmp_path / "surefoot.db"
    url = completed_store(path)
    before = rows(path)
    store = SQLiteStore(url, auto_migrate=False)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.migrate() == SCHEMA_VERSION
    finally:
        store.close()
    assert rows(path) == before


def test_closed_store_refuses_new_work_with_a_store_error(tmp_path):
    store = SQLiteStore(f"sqlite:///{tmp_path / 'surefoot.db'}")
    store.close()
    with pytest.raises(sf.StoreError, match="closed"):
        store.schema_version()


def test_an_sqlite_library_too_old_for_the_stores_statements_is_refused_by_name():
    with pytest.raises(StoreUnavailableError, match=r"library is 3\.31\.1; .* needs 3\.35\.0"):
        check_sqlite_library((3, 31, 1))
    check_sqlite_library((3, 35, 0))
    check_sqlite_library(sqlite3.sqlite_version_info)  # the library these tests run on


def test_an_sqlite_library_too_old_leaves_an_existing_store_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "s.db"
    url = completed_store(path)
    before = files(tmp_path)
    monkeypatch.setattr("surefoot.store.sqlite.base.MIN_SQLITE", (99, 0, 0))
    with pytest.raises(StoreUnavailableError, match=r"needs 99\.0\.0"):
        SQLiteStore(url)
    with pytest.raises(StoreUnavailableError, match=r"needs 99\.0\.0"):
        SQLiteStore(f"sqlite:///{tmp_path / 'new.db'}")
    assert files(tmp_path) == before
