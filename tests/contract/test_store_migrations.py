"""Migrations: numbered from 1 without gaps, idempotent, and the printed schema equals the one
the store builds by migrating."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from surefoot.store.base import SCHEMA_VERSION
from surefoot.store.migrations import load_migrations, schema_sql
from surefoot.store.sqlite import SQLiteStore

DIALECTS = [pytest.param("sqlite", id="sqlite")]


def sqlite_schema(path: Path) -> dict[tuple[str, str], str | None]:
    """Every table, index and trigger with its DDL, as SQLite records it."""
    with closing(sqlite3.connect(path)) as conn:
        return {
            (kind, name): sql
            for kind, name, sql in conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            )
        }


@pytest.mark.parametrize("dialect", DIALECTS)
def test_migrations_are_numbered_from_one_without_gaps_up_to_the_schema_version(dialect):
    migrations = load_migrations(dialect)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[-1].version == SCHEMA_VERSION
    assert all(m.name.startswith(f"{m.version:04d}_") for m in migrations)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_schema_sql_is_every_migration_in_order(dialect):
    text = schema_sql(dialect)
    positions = [text.index(m.sql) for m in load_migrations(dialect)]
    assert positions == sorted(positions)


def test_schema_sql_applied_to_empty_database_equals_auto_migrated_schema(tmp_path):
    from_file = tmp_path / "from-schema-sql.db"
    with closing(sqlite3.connect(from_file)) as conn:
        conn.executescript(schema_sql("sqlite"))
    migrated = tmp_path / "auto-migrated.db"
    SQLiteStore(f"sqlite:///{migrated}").close()
    assert sqlite_schema(from_file) == sqlite_schema(migrated)


def test_store_created_from_schema_sql_opens_at_the_current_version(tmp_path):
    path = tmp_path / "from-schema-sql.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(schema_sql("sqlite"))
    store = SQLiteStore(f"sqlite:///{path}", auto_migrate=False)
    try:
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()


def test_new_store_is_at_the_current_version_and_records_each_migration(tmp_path):
    path = tmp_path / "surefoot.db"
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()
    with closing(sqlite3.connect(path)) as conn:
        recorded = conn.execute("SELECT version, name FROM surefoot_schema ORDER BY version")
        assert [tuple(r) for r in recorded] == [
            (m.version, m.name) for m in load_migrations("sqlite")
        ]


def test_migrating_twice_changes_nothing(tmp_path):
    path = tmp_path / "surefoot.db"
    store = SQLiteStore(f"sqlite:///{path}")
    try:
        before = sqlite_schema(path)
        assert store.migrate() == SCHEMA_VERSION
        assert store.migrate() == SCHEMA_VERSION
        assert sqlite_schema(path) == before
    finally:
        store.close()
    reopened = SQLiteStore(f"sqlite:///{path}")
    reopened.close()
    assert sqlite_schema(path) == before


def test_store_runs_in_wal_mode_with_full_synchronous_commits(tmp_path):
    path = tmp_path / "surefoot.db"
    SQLiteStore(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
