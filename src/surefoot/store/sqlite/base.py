"""SQLite plumbing: opening, pragmas, transactions with busy-retry, conversions, audit.

Durability settings are not optional: WAL journal, ``synchronous=FULL`` (a
commit is on disk before it returns; a worker's claims alone need not wait for the
disk, see ``group_commit``), foreign keys on. The WAL is checkpointed
less often than SQLite's default (``WAL_AUTOCHECKPOINT_PAGES``), which costs
disk space, not durability. Writers use
``BEGIN IMMEDIATE`` so two processes never both believe they hold a run.
A busy database blocks and retries here with jitter, so a lock held by a
neighbouring worker is never a workflow failure.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from surefoot.domain.records import AuditRecord, Lease
from surefoot.errors import (
    LeaseLostError,
    SchemaOutdatedError,
    SchemaTooNewError,
    StoreError,
    StoreUnavailableError,
    StoreUrlError,
)
from surefoot.store.base import SCHEMA_VERSION
from surefoot.store.migrations import SCHEMA_TABLE_DDL, load_migrations
from surefoot.store.sqlite.audit_chain import AuditAppender
from surefoot.store.sqlite.group_commit import GroupCommitter
from surefoot.store.sqlite.values import ts
from surefoot.store.sqlite.watch import ChangeWatcher

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5_000
WAL_AUTOCHECKPOINT_PAGES = 10_000
MAX_BUSY_RETRY_S = 120.0


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` to a path."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise StoreUrlError(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file.db)")
    if parts.netloc:
        raise StoreUrlError(f"SQLite URLs have no host: {url!r} (use sqlite:///file.db)")
    raw = unquote(parts.path)
    if raw.startswith("/"):
        raw = raw[1:]
    if raw in ("", ":memory:"):
        raise StoreUrlError(
            "an in-memory SQLite store cannot be shared by workers and does not survive a "
            "crash; give a file path such as sqlite:///surefoot.db"
        )
    return Path(raw)


# The oldest SQLite library the store's statements run on (``UPDATE ... RETURNING``: 3.35).
MIN_SQLITE = (3, 35, 0)


def check_sqlite_library(version: tuple[int, int, int] = sqlite3.sqlite_version_info) -> None:
    """Refuse, with what to do, an SQLite library too old for the store's statements,
    before anything is opened or written (instead of a syntax error at the first claim)."""
    if version < MIN_SQLITE:
        found, needed = ".".join(map(str, version)), ".".join(map(str, MIN_SQLITE))
        raise StoreUnavailableError(
            f"this Python's SQLite library is {found}; the SQLite store needs {needed} or "
            "later (a newer Python build or operating system), or use PostgreSQL"
        )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SQLiteBase:
    """Connections (one per thread), transactions and the audit chain."""

    dialect = "sqlite"

    def __init__(self, url: str, *, auto_migrate: bool = True, create: bool = True) -> None:
        check_sqlite_library()
        self.url = url
        self.path = sqlite_path(url)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        if not self.path.parent.exists():
            raise StoreUnavailableError(
                f"cannot open {url}: directory {self.path.parent} does not exist"
            )
        if not create and not self.path.exists():
            raise StoreUnavailableError(
                f"no store at {self.path.resolve()}; check --store / SUREFOOT_STORE_URL and the "
                "working directory (`surefoot db upgrade --store URL` creates a new one)"
            )
        try:
            self._conn()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open {url}: {exc}") from exc
        self._audit = AuditAppender()
        self._committer = GroupCommitter(
            self._open_connection,
            hooks=self._audit,
            name=self.path.name,
            is_busy=_is_busy,
            busy_deadline_s=MAX_BUSY_RETRY_S,
        )
        self._watcher = ChangeWatcher(
            self._committer.data_version,
            name=self.path.name,
            wal=self.path.with_name(self.path.name + "-wal"),
        )
        self._committer.observe(self._watcher)
        try:
            self._check_schema(url, auto_migrate)
        except BaseException:
            self.close()
            raise

    def _check_schema(self, url: str, auto_migrate: bool) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{url} has schema {version}, newer than this Surefoot understands "
                f"({SCHEMA_VERSION}); upgrade Surefoot. Nothing was changed."
            )
        if version < SCHEMA_VERSION:
            if not auto_migrate:
                raise SchemaOutdatedError(
                    f"{url} has schema {version}; this code needs {SCHEMA_VERSION}. "
                    "Run `surefoot db upgrade`."
                )
            self.migrate()

    # -- connections -------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's reading connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError("the store is closed")
        conn = self._open_connection()
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        """A connection with the durability settings; a busy database is waited for."""
        deadline = time.monotonic() + MAX_BUSY_RETRY_S
        delay = 0.005
        while True:
            try:
                return self._try_open_connection()
            except StoreUnavailableError as exc:
                cause = exc.__cause__
                busy = isinstance(cause, sqlite3.OperationalError) and _is_busy(cause)
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, 0.5)

    def _try_open_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":  # switching needs a lock; only the first opener does
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailableError(f"{self.url}: WAL journal mode refused ({mode})")
            conn.execute("PRAGMA synchronous=FULL")
            # Checkpoint the WAL every ~40 MB instead of SQLite's 4 MB: a page written by
            # many commits (the audit head, hot index pages) is copied back once, not ten
            # times. Durability is the WAL's (each COMMIT is fsynced there first).
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise StoreUnavailableError(f"cannot open {self.url}: {exc}") from exc
        return conn

    def close(self) -> None:
        self._closed = True
        self._watcher.close()
        self._committer.close()
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def _begin(self, conn: sqlite3.Connection, write: bool) -> Iterator[sqlite3.Cursor]:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()

    def _write(self, fn: Callable[[sqlite3.Cursor], T], *, flush: bool = True) -> T:
        """A write transaction, committed together with the process's other concurrent
        writes (see ``group_commit``); returns once its COMMIT is on disk. ``flush=False``
        only for a write that acknowledges nothing outside the store and is undone by
        nothing but a crash of the machine (a claim): it may return before the disk has it."""
        return self._committer.submit(fn, flush=flush)

    def _read(self, fn: Callable[[sqlite3.Cursor], T]) -> T:
        return self._run(fn, write=False)

    def _run(self, fn: Callable[[sqlite3.Cursor], T], *, write: bool) -> T:
        deadline = time.monotonic() + MAX_BUSY_RETRY_S
        delay = 0.005
        while True:
            conn = self._conn()
            try:
                with self._begin(conn, write) as cur:
                    return fn(cur)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise StoreError(f"{self.url}: {exc}") from exc
            time.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, 0.5)

    # -- schema -------------------------------------------------------------------------
    def schema_version(self) -> int:
        def read(cur: sqlite3.Cursor) -> int:
            exists = cur.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='surefoot_schema'"
            ).fetchone()
            if not exists:
                return 0
            row = cur.execute("SELECT MAX(version) FROM surefoot_schema").fetchone()
            return int(row[0] or 0)

        try:
            return self._read(read)
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailableError(
                f"{self.url} is not a Surefoot SQLite store: {exc}"
            ) from exc

    def migrate(self) -> int:
        """Apply missing migrations, each in its own transaction. Returns the version."""

        def apply(cur: sqlite3.Cursor) -> int:
            cur.execute(SCHEMA_TABLE_DDL)
            current = int(
                cur.execute("SELECT COALESCE(MAX(version), 0) FROM surefoot_schema").fetchone()[0]
            )
            if current > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.url} has schema {current}; code knows {SCHEMA_VERSION}"
                )
            for migration in load_migrations(self.dialect):
                if migration.version <= current:
                    continue
                for statement in _statements(migration.sql):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO surefoot_schema VALUES (?, ?, ?)",
                    (migration.version, migration.name, ts(datetime.now(UTC))),
                )
                current = migration.version
            return current

        return self._write(apply)

    # -- fencing and audit (called inside a write transaction) ----------------------------
    @staticmethod
    def _fence_txn(cur: sqlite3.Cursor, lease: Lease) -> sqlite3.Row:
        """The run's lease owner and epoch, checked; also its status, cancel request and
        correlation id, the only columns the fenced writes read."""
        row = cur.execute(
            "SELECT lease_owner, lease_epoch, status, cancel_requested, correlation_id"
            " FROM runs WHERE run_id = ?",
            (lease.run_id,),
        ).fetchone()
        if (
            row is None
            or row["lease_owner"] != lease.worker_id
            or row["lease_epoch"] != lease.epoch
        ):
            raise LeaseLostError(
                f"run {lease.run_id} is no longer leased to {lease.worker_id} "
                f"(epoch {lease.epoch}); nothing was written"
            )
        result: sqlite3.Row = row
        return result

    def _audit_txn(self, cur: sqlite3.Cursor, record: AuditRecord, now: datetime) -> None:
        at = ts(now)
        assert at is not None
        self._audit.append(cur, record, at)


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (our files keep one ``;`` per statement)."""
    cleaned = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in cleaned.split(";") if s.strip()]


def process_identity() -> tuple[str, int]:
    return os.uname().nodename, os.getpid()
