"""PostgreSQL for tests: a fresh database per test, cloned from a migrated template.

The server is ``SUREFOOT_TEST_POSTGRES_URL`` (default: the local server's ``test``
database as ``postgres``); that database is only used to create and drop others.
Without a reachable server the tests skip, unless ``SUREFOOT_REQUIRE_POSTGRES=1``
(CI), where they fail.

One template database is migrated per session (``CREATE DATABASE ... TEMPLATE``
then copies it in milliseconds) and dropped when the session ends; every test
database is dropped when its test ends. Names carry the test process's pid, so a
session killed before its clean-up (a CI timeout, Ctrl-C twice) leaves databases that
the next session on a loopback server drops once their process is gone.

Use the fixtures by binding them in a test module or a conftest::

    from tests import postgres_support

    postgres_server = postgres_support.postgres_server
    postgres_url = postgres_support.postgres_url
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from surefoot.store.postgres import PostgresStore

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN_URL_VARIABLE = "SUREFOOT_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "SUREFOOT_REQUIRE_POSTGRES"
PREFIX = "surefoot_test_"
_OWNED = re.compile(rf"^{PREFIX}(?:template_)?(\d+)_[0-9a-f]+$")


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL)


def required() -> bool:
    return os.environ.get(REQUIRE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def url_for(base: str, dbname: str) -> str:
    """``base`` with its database replaced by ``dbname``."""
    return urlunsplit(urlsplit(base)._replace(path=f"/{dbname}"))


class PostgresServer:
    """Creates and drops the databases of one test session."""

    def __init__(self, url: str) -> None:
        self.admin_url = url
        self._template: str | None = None
        self._lock = threading.Lock()

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)

    def unreachable_reason(self) -> str | None:
        try:
            with self._admin() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"no PostgreSQL server at {self.admin_url}: {exc}"
        return None

    def url(self, dbname: str) -> str:
        return url_for(self.admin_url, dbname)

    def sweep_stale(self) -> list[str]:
        """Drop the databases of test processes that are no longer running. Only on a
        loopback server: a pid says nothing about processes on another machine."""
        if urlsplit(self.admin_url).hostname not in ("127.0.0.1", "localhost", "::1"):
            return []
        with self._admin() as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        stale = []
        for name in names:
            match = _OWNED.match(str(name))
            if match is None or _alive(int(match.group(1))):
                continue
            with contextlib.suppress(psycopg.Error):  # another session may drop it first
                self.drop(str(name))
                stale.append(str(name))
        return stale

    def template(self) -> str:
        """The migrated template database, created on first use."""
        with self._lock:
            if self._template is None:
                self.sweep_stale()
                name = f"{PREFIX}template_{os.getpid()}_{uuid.uuid4().hex[:8]}"
                with self._admin() as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                try:
                    PostgresStore(self.url(name)).close()
                except BaseException:
                    self.drop(name)
                    raise
                self._template = name
            return self._template

    @contextmanager
    def database(self, *, empty: bool = False) -> Iterator[str]:
        """A new database with the current schema (or none, with ``empty``); dropped
        afterwards. Yields its URL."""
        template = "template0" if empty else self.template()
        name = f"{PREFIX}{os.getpid()}_{uuid.uuid4().hex[:16]}"
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        with self._admin() as conn:
            for remaining in range(20, -1, -1):
                try:
                    conn.execute(create)
                    break
                except psycopg.errors.ObjectInUse:  # the template's last session is closing
                    if remaining == 0:
                        raise
                    time.sleep(0.1)
        try:
            yield self.url(name)
        finally:
            self.drop(name)

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def terminate_backends(self, dbname: str) -> int:
        """Cut every connection to ``dbname`` (as a server restart would). Returns how many."""
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchall()
        return sum(1 for (terminated,) in rows if terminated)

    def close(self) -> None:
        with self._lock:
            template, self._template = self._template, None
        if template is not None:
            self.drop(template)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """One server object per process, so every module shares one template."""
    global _shared  # noqa: PLW0603 - a per-process cache of the session's server
    if _shared is None:
        _shared = PostgresServer(admin_url())
    return _shared


def require_server() -> PostgresServer:
    """The server, or skip (fail when ``SUREFOOT_REQUIRE_POSTGRES=1``) if unreachable."""
    server = shared_server()
    reason = server.unreachable_reason()
    if reason is not None:
        if required():
            pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1)")
        pytest.skip(reason)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = require_server()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, migrated database for this test."""
    with postgres_server.database() as url:
        yield url
