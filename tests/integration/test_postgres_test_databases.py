"""The test harness leaves nothing behind: a killed session's databases are dropped by the
next session once their process is gone, and a live session's are never touched."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from tests import postgres_support

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)


def _exists(server: postgres_support.PostgresServer, name: str) -> bool:
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


def _create(server: postgres_support.PostgresServer, name: str) -> None:
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def test_a_dead_sessions_databases_are_dropped_and_a_live_ones_kept(
    postgres_server: postgres_support.PostgresServer,
):
    dead, suffix = _dead_pid(), uuid.uuid4().hex[:8]
    left_template = f"{postgres_support.PREFIX}template_{dead}_{suffix}"
    left_test = f"{postgres_support.PREFIX}{dead}_{suffix}"
    ours = f"{postgres_support.PREFIX}{os.getpid()}_{suffix}"
    for name in (left_template, left_test, ours):
        _create(postgres_server, name)
    try:
        dropped = postgres_server.sweep_stale()
        assert {left_template, left_test} <= set(dropped)
        assert not _exists(postgres_server, left_template)
        assert not _exists(postgres_server, left_test)
        assert _exists(postgres_server, ours)  # this process is alive: never swept
    finally:
        for name in (left_template, left_test, ours):
            postgres_server.drop(name)
