"""The two stores under test: fresh databases, direct reads, and the raw commit ceiling.

A :class:`Target` creates one empty database per measurement (a SQLite file in the
benchmark's temporary directory, or a PostgreSQL database named ``surefoot_bench_*`` that
is dropped at the end). A :class:`Probe` reads a benchmark database directly, without
going through Surefoot, so measuring does not add work to the engine under test.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "surefoot_bench_"
_TERMINAL = ("succeeded", "failed", "cancelled")

# Notes about the run that a reader of the tables should know (a server restart, ...).
NOTES: list[str] = []


def add_postgres_url_argument(parser: argparse.ArgumentParser) -> None:
    """``--postgres-url``: where the benchmark creates and drops its own databases."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("SUREFOOT_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="a database used only to create and drop surefoot_bench_* databases",
    )


@dataclass(frozen=True)
class RunTimes:
    run_id: str
    status: str
    created_at: datetime
    finished_at: datetime | None


def as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class Probe(ABC):
    """Direct reads of one benchmark database (``?`` placeholders in every dialect)."""

    @abstractmethod
    def query(self, text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def close(self) -> None: ...

    def worker_registered(self, pid: int) -> bool:
        rows = self.query("SELECT 1 FROM workers WHERE pid = ? AND stopped_at IS NULL", (pid,))
        return bool(rows)

    def count(self, workflow: str, statuses: Sequence[str]) -> int:
        marks = ",".join("?" * len(statuses))
        rows = self.query(
            f"SELECT COUNT(*) FROM runs WHERE workflow = ? AND status IN ({marks})",
            (workflow, *statuses),
        )
        return int(rows[0][0])

    def finished(self, workflow: str) -> int:
        return self.count(workflow, _TERMINAL)

    def runs(self, workflow: str) -> list[RunTimes]:
        rows = self.query(
            "SELECT run_id, status, created_at, finished_at FROM runs WHERE workflow = ?",
            (workflow,),
        )
        return [
            RunTimes(
                str(r[0]),
                str(r[1]),
                as_datetime(r[2]),
                None if r[3] is None else as_datetime(r[3]),
            )
            for r in rows
        ]

    def attempt_times(self, step: str, outcome: str) -> list[datetime]:
        """When attempts of ``step`` with ``outcome`` finished (or started, if still open)."""
        rows = self.query(
            "SELECT COALESCE(finished_at, started_at) FROM attempts WHERE step = ? AND outcome = ?",
            (step, outcome),
        )
        return [as_datetime(r[0]) for r in rows]

    def worker_starts(self) -> list[datetime]:
        return [as_datetime(r[0]) for r in self.query("SELECT started_at FROM workers")]

    def lease_expiries(self, workflow: str) -> list[datetime]:
        rows = self.query(
            "SELECT lease_expires_at FROM runs WHERE workflow = ? AND status = 'running'"
            " AND lease_expires_at IS NOT NULL",
            (workflow,),
        )
        return [as_datetime(r[0]) for r in rows]


class SQLiteProbe(Probe):
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)

    def query(self, text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(text, tuple(params)).fetchall())

    def close(self) -> None:
        self._conn.close()


class PostgresProbe(Probe):
    """Reconnects when the server goes away (another process may restart it)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def query(self, text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + 60
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
                return list(
                    self._conn.execute(text.replace("?", "%s").encode(), tuple(params)).fetchall()
                )
            except psycopg.OperationalError:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class Target(ABC):
    kind: str

    @abstractmethod
    def new_database(self) -> str:
        """The store URL of a new, empty database."""

    @abstractmethod
    def probe(self, url: str) -> Probe: ...

    @abstractmethod
    def commit_ceiling(self, url: str, seconds: float, connections: int = 1) -> float:
        """Commits per second of one small INSERT per transaction, with the store's
        durability settings, next to the database at ``url``."""

    @abstractmethod
    def describe(self) -> list[tuple[str, str]]: ...

    def wal_file(self, url: str) -> Path | None:  # noqa: ARG002 - SQLite's needs it
        """The write-ahead log file the database at ``url`` writes its commits to, where
        the benchmark can see one (SQLite's); None for a server's (PostgreSQL recycles
        its WAL segments)."""
        return None

    def close(self) -> None:
        return None


class SQLiteTarget(Target):
    kind = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._count = 0

    def new_database(self) -> str:
        self._count += 1
        return f"sqlite:///{self.directory / f'bench-{self._count}.db'}"

    @staticmethod
    def path(url: str) -> Path:
        return Path(urlsplit(url).path[1:])  # sqlite:////abs/file.db -> /abs/file.db

    def probe(self, url: str) -> Probe:
        return SQLiteProbe(self.path(url))

    def wal_file(self, url: str) -> Path:
        path = self.path(url)
        return path.with_name(f"{path.name}-wal")

    def commit_ceiling(self, url: str, seconds: float, connections: int = 1) -> float:
        if connections != 1:
            raise ValueError("SQLite has one writer at a time; measure one connection")
        path = self.path(url).with_name(f"{self.path(url).stem}-ceiling.db")
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"WAL refused ({mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS ceiling (id INTEGER PRIMARY KEY, payload TEXT)"
            )
            commits = 0
            start = time.perf_counter()
            end = start + seconds
            while time.perf_counter() < end:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO ceiling (payload) VALUES (?)", ("x" * 32,))
                conn.execute("COMMIT")
                commits += 1
            return commits / (time.perf_counter() - start)
        finally:
            conn.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    def describe(self) -> list[tuple[str, str]]:
        return [
            ("SQLite", sqlite3.sqlite_version),
            (
                "SQLite settings",
                "journal_mode=WAL, synchronous=FULL (the store's own; a worker's claims alone:"
                " NORMAL)",
            ),
        ]


class PostgresTarget(Target):
    kind = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._token = secrets.token_hex(3)
        self._created: list[str] = []
        self._count = 0
        self.started_at = self._postmaster_start()

    def _admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10)

    def _postmaster_start(self) -> datetime:
        with self._admin() as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        assert row is not None
        return as_datetime(row[0])

    def url_for(self, dbname: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{dbname}"))

    def new_database(self) -> str:
        self._count += 1
        name = f"{DATABASE_PREFIX}{self._token}_{self._count}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        return self.url_for(name)

    def probe(self, url: str) -> Probe:
        return PostgresProbe(url)

    def commit_ceiling(self, url: str, seconds: float, connections: int = 1) -> float:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_ceiling (id BIGSERIAL PRIMARY KEY, payload TEXT)"
            )
        counts = [0] * connections
        failures: list[BaseException] = []
        ready = threading.Barrier(connections + 1)
        start_at: list[float] = []

        def insert(index: int) -> None:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    ready.wait(30)
                    end = start_at[0] + seconds
                    while time.perf_counter() < end:
                        conn.execute("INSERT INTO bench_ceiling (payload) VALUES (%s)", ("x" * 32,))
                        counts[index] += 1
            except BaseException as exc:
                failures.append(exc)
                ready.abort()

        threads = [threading.Thread(target=insert, args=(i,)) for i in range(connections)]
        for thread in threads:
            thread.start()
        start_at.append(time.perf_counter())
        ready.wait(30)
        for thread in threads:
            thread.join(seconds + 30)
        elapsed = time.perf_counter() - start_at[0]
        if failures:
            raise RuntimeError(f"commit ceiling failed: {failures[0]!r}") from failures[0]
        return sum(counts) / elapsed

    def describe(self) -> list[tuple[str, str]]:
        clean: dict[str, str] = {}
        with self._admin() as conn:
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method"):
                row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
                clean[name] = str(row[0]) if row else "?"
        return [
            ("PostgreSQL", clean["server_version"]),
            (
                "PostgreSQL settings",
                f"synchronous_commit={clean['synchronous_commit']}, fsync={clean['fsync']},"
                f" wal_sync_method={clean['wal_sync_method']} (server defaults, unchanged)",
            ),
        ]

    def close(self) -> None:
        try:
            if self._postmaster_start() != self.started_at:
                NOTES.append(
                    "The PostgreSQL server was restarted during the run (by another process on"
                    " this shared machine); the PostgreSQL numbers include that outage."
                )
        except psycopg.Error:
            NOTES.append("The PostgreSQL server could not be reached at the end of the run.")
        for name in self._created:
            for _ in range(3):
                try:
                    with self._admin() as conn:
                        conn.execute(
                            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                                sql.Identifier(name)
                            )
                        )
                    break
                except psycopg.Error:
                    time.sleep(1)
        self._created.clear()
