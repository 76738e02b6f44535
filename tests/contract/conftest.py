"""The `store` fixture: every contract test runs once per Store implementation.

SQLite runs everywhere. PostgreSQL runs on a fresh database per test, cloned from a migrated
template (see ``tests/postgres_support.py``); it skips without a server unless
``SUREFOOT_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from surefoot.store.base import Store
from surefoot.store.postgres import PostgresStore
from surefoot.store.sqlite import SQLiteStore
from tests import postgres_support

STORE_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]

postgres_server = postgres_support.postgres_server  # session fixture: the template database


def open_contract_store(kind: str, tmp_path: Path) -> Store:
    if kind == "sqlite":
        return SQLiteStore(f"sqlite:///{tmp_path / 'contract.db'}")
    raise AssertionError(f"no contract store factory for {kind!r}")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        server: postgres_support.PostgresServer = request.getfixturevalue("postgres_server")
        with server.database() as url:
            opened: Store = PostgresStore(url)
            yield opened
            opened.close()
        return
    opened = open_contract_store(request.param, tmp_path)
    yield opened
    opened.close()
