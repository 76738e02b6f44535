"""PostgreSQL plumbing: the pool, transactions with transient-error retry, schema, audit.

Transactions: writers run at READ COMMITTED and lock what they change
(``SELECT ... FOR UPDATE`` on the run row, which is what fences a lease);
readers run at REPEATABLE READ, READ ONLY, so one read sees one snapshot (a
read of one statement is sent alone: it sees one anyway). Each transaction's
``BEGIN`` is sent with its first statement and its ``COMMIT`` with its last
ones, not in round trips of their own (see :mod:`surefoot.store.postgres.connection`).
The write transactions of a process that wait at the same time share one
PostgreSQL transaction and one ``COMMIT`` (see
:mod:`surefoot.store.postgres.group_commit`); each caller still gets only its
own result or error, and only once that ``COMMIT`` has returned.

Transient errors (connection lost, server restart or failover, serialization
failure, deadlock, too many connections) block and retry here with jittered
backoff, re-running the whole transaction function (for writes, every function
of the batch), so a database blip is never a workflow failure. A commit whose
answer was lost is not guessed at: the transaction id is read before ``COMMIT``
and looked up with ``pg_xact_status`` afterwards, so a committed change is never
applied twice.

A write transaction's audit entries are queued while it runs and stored, in
order, by one statement sent with its ``COMMIT`` (with any writes whose answer the
transaction does not need, see ``_later_txn``): they commit with the change they
record. They are numbered and linked into the hash chain by a sweep shortly after,
and before any read of the log (see :mod:`surefoot.store.postgres.audit`), so no
write waits for another's commit to reach the chain's head.

When a run becomes claimable, the transaction that made it so sends
``NOTIFY surefoot_runs`` with the run's queue as payload (delivered on commit).
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString, NamedTuple, TypeAlias, TypeVar
from weakref import WeakKeyDictionary

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from surefoot.domain.audit import entry_row
from surefoot.domain.records import AuditRecord, Lease
from surefoot.errors import (
    SchemaOutdatedError,
    SchemaTooNewError,
    StoreError,
    StoreUnavailableError,
)
from surefoot.store.base import SCHEMA_VERSION
from surefoot.store.migrations import SCHEMA_TABLE_DDL, load_migrations
from surefoot.store.postgres import audit, connection, fences, merged
from surefoot.store.postgres.group_commit import Again, GroupCommitter, Work
from surefoot.store.postgres.sweep import AuditSweeper
from surefoot.store.postgres.urls import conninfo_for, redacted

T = TypeVar("T")
Cursor: TypeAlias = psycopg.Cursor[DictRow]
Row: TypeAlias = DictRow

log = logging.getLogger("surefoot.store")

MAX_RETRY_S = 120.0  # how long a transient failure is retried before it becomes an error
FIRST_DELAY_S = 0.01
MAX_DELAY_S = 1.0
# Correlation ids of leased runs kept at most (about 100 bytes each).
MAX_KNOWN_RUNS = 100_000
POOL_TIMEOUT_S = 10.0  # waiting for a free (or new) connection; a timeout is retried
# Batches of runs' own writes that a worker process writes at once, each on its own
# connection, while it is the only live worker of its database: while one batch waits for
# the server, the next is prepared. With more worker processes, theirs already overlap,
# and more batches would only split each process's commits into smaller ones: each
# process then writes one batch at a time. Two finish more runs than one or three (the
# benchmark's W1), now that a batch's run ends share their sends.
BATCHES_WHEN_ALONE = 2
RECOUNT_S = 1.0  # a worker busy claiming counts the live workers this often
NOTIFY_CHANNEL = "surefoot_runs"
# Sent when a worker ends a run (payload: the run id): wakes clients waiting for a result.
FINISHED_CHANNEL = "surefoot_finished"
MIGRATION_LOCK = 0x5F5E_F007  # pg_advisory_xact_lock key: one migrator at a time
# NULL when the transaction wrote nothing: then its commit outcome does not matter.
_CURRENT_XID = "SELECT pg_current_xact_id_if_assigned()::text AS xid"
# A transaction with writes left for its end: its id, assigned now if need be.
_ASSIGNED_XID = "SELECT pg_current_xact_id()::text AS xid"
# A transaction's wake-ups in the order given: one JSON array of [channel, payload] pairs
# (the driver sends a JSON text for less than it takes to send two arrays).
_NOTIFY_ALL = (
    "SELECT pg_notify(n.e->>0, n.e->>1)"
    " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS n (e, i) ORDER BY n.i"
)
# Whether a run with this id committed (see ``_created``): no row back if it did.
_PROBE = (
    "INSERT INTO runs (run_id, workflow, queue, status, inputs_hash, inputs, created_at,"
    " updated_at) VALUES (%s, '', '', 'pending', '', '', now(), now())"
    " ON CONFLICT (run_id) DO NOTHING RETURNING run_id"
)
# How long one probe waits for the transaction it asks about to end, before asking again.
PROBE_WAIT_MS = 5_000

# SQLSTATE classes and codes worth retrying: connection exceptions (08), transaction
# rollbacks such as serialization failure and deadlock (40), insufficient resources such as
# too many connections (53), and operator intervention: shutdown, crash, starting up (57P0x).
# 25006: a failover left us on a read-only server. 55P03: lock not available.
_TRANSIENT_CLASSES = ("08", "40", "53")
_TRANSIENT_STATES = frozenset({"25006", "25P03", "55P03", "57P01", "57P02", "57P03", "57P05"})


def is_transient(exc: psycopg.Error) -> bool:
    if isinstance(exc, PoolClosed):
        return False
    if isinstance(exc, PoolTimeout):
        return True
    state = exc.sqlstate
    if state is None:
        # Raised by the client itself: the connection failed, closed or was lost.
        return isinstance(exc, psycopg.OperationalError)
    return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES


def _loses_connection(exc: psycopg.Error) -> bool:
    """Whether the connection that raised this should not be reused."""
    state = exc.sqlstate
    return state is None or not state.startswith("40")


def ts(value: datetime | None) -> datetime | None:
    """A datetime for a query parameter: aware, in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; Surefoot uses aware UTC")
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    """The text form the audit chain hashes (the same as the SQLite store stores)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def dt(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def dt_required(value: datetime) -> datetime:
    return value.astimezone(UTC)


def dumps_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


def one(cur: Cursor) -> Row:
    """The row a statement always returns (an aggregate, ``RETURNING``)."""
    row = cur.fetchone()
    if row is None:
        raise StoreError("the database returned no row where one was certain")
    return row


@dataclass
class _TxnEnd:
    """What a write transaction (a batch of transaction functions) sends right before
    its ``COMMIT``, and its id if known."""

    later: list[tuple[str, Any]] = field(default_factory=list)
    checks: dict[int, fences.Check] = field(default_factory=dict)  # lease checks in ``later``
    audit: list[tuple[AuditRecord, datetime]] = field(default_factory=list)
    notify: list[tuple[str, str]] = field(default_factory=list)  # (channel, payload)
    xid: str | None = None
    unchanged: int = 0  # functions that said they changed no row (``_changed_nothing_txn``)
    # A new run this transaction inserts: a lost COMMIT answer is looked up by it when no
    # transaction id was read (``_created``).
    probe: str | None = None
    # ``later`` holds inserts that may fail on their own (new runs'): sent before COMMIT
    # when the batch has other functions, so a failure is known to be theirs.
    fallible: bool = False

    @property
    def writes(self) -> bool:
        """Whether what is left for the end writes (so the transaction will have an id)."""
        return bool(self.later or self.audit)


class _Known(NamedTuple):
    """What a worker knows of a run it holds: its correlation id (which never changes),
    the status it last saw the run in or gave it, and whether the run may have open
    review items (none can be added while it is held: only a run's own wait adds one)."""

    correlation_id: str | None
    status: str
    open_reviews: bool = True


@dataclass
class _Checkout:
    """A pooled connection lent to one attempt, and whether it must not be reused."""

    conn: connection.Connection
    discard: bool = False


class PostgresBase:
    """The connection pool, transactions and the audit chain."""

    dialect = "postgres"

    def __init__(
        self,
        url: str,
        *,
        auto_migrate: bool = True,
        create: bool = True,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        self.url = redacted(url)  # what messages and listings show; never the password
        self.safe_url = self.url
        self._conninfo = conninfo_for(url)
        self._closed = False
        self._max_size = max_size
        # When each pooled connection was opened and its server process (to tell this
        # store's notifications from others'), and when a connection was last lost:
        # connections older than the loss are presumed dead too (a restart, a failover,
        # pg_terminate_backend) and replaced without being tried.
        self._opened: WeakKeyDictionary[psycopg.Connection[Any], tuple[float, int]] = (
            WeakKeyDictionary()
        )
        self._opened_lock = threading.Lock()
        self._lost_at = 0.0
        # What each open write transaction leaves for its end, by id of its cursor.
        self._txns: dict[int, _TxnEnd] = {}
        # Each leased run's correlation id (it never changes) and the status this worker
        # last saw it in or gave it, from its claim or its row: a write that knows them
        # can send its lease check with its writes (``fences``).
        self._leased: dict[str, _Known] = {}
        # Write transactions run in batches on the callers' threads: one at a time, or up
        # to ``BATCHES_WHEN_ALONE`` of runs' own writes once this process is a worker that
        # finds itself the only live one (``_live_workers_seen``).
        self._live_counted_at = -math.inf  # when live workers were last counted
        self._committer: GroupCommitter[Cursor] = GroupCommitter(
            self._write_batch,
            settle=self._send_later_txn,
            must_settle=self._must_settle,
            is_transient=is_transient,
            wrap=self._store_error,
        )
        # Chains the audit entries this store's writes leave pending (``audit``).
        self._sweeper = AuditSweeper(self._sweep_audit)
        try:
            psycopg.connect(self._conninfo).close()
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"cannot reach {self.safe_url}: {exc}") from exc
        # Autocommit for psycopg: the store begins each transaction itself, with the
        # transaction's first statement (see ``connection``).
        self._pool: ConnectionPool[connection.Connection] = ConnectionPool(
            self._conninfo,
            connection_class=connection.Connection,
            kwargs={"autocommit": True, "cursor_factory": connection.Cursor},
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=POOL_TIMEOUT_S,
            name="surefoot",
            configure=self._note_opened,
        )
        self._pool.open()
        try:
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.safe_url} has schema {version}, newer than this Surefoot "
                    f"understands ({SCHEMA_VERSION}); upgrade Surefoot. Nothing was changed."
                )
            if version == 0 and not create:
                raise StoreUnavailableError(
                    f"{self.safe_url} holds no Surefoot store; check --store / "
                    "SUREFOOT_STORE_URL (`surefoot db upgrade --store URL` creates one)"
                )
            if version < SCHEMA_VERSION:
                if not auto_migrate:
                    raise SchemaOutdatedError(
                        f"{self.safe_url} has schema {version}; this code needs "
                        f"{SCHEMA_VERSION}. Run `surefoot db upgrade`."
                    )
                self.migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._sweeper.stop() and not self._closed:
            try:  # once: if the database is down, the next sweep of any store chains them
                self._sweep_once()
            except (psycopg.Error, StoreError) as exc:
                log.warning("audit entries left pending for the next sweep: %s", exc)
        self._closed = True
        self._pool.close()

    # -- transactions --------------------------------------------------------------------
    def _write(
        self, fn: Callable[[Cursor], T], *, concurrent: bool = False, blind: bool = False
    ) -> T:
        """Run ``fn`` in a write transaction, committed together with the other write
        transactions of this process waiting at the time (see
        :mod:`surefoot.store.postgres.group_commit`). ``concurrent``: ``fn`` locks only
        the rows of the one run whose lease its caller holds (or skips locked rows), so
        its batch may be written while another is. ``blind``: ``fn`` executes no
        statement itself, it only defers them (``_later_txn``, ``_audit_txn``,
        ``_notify_txn``), so it reads nothing."""
        return self._committer.submit(fn, concurrent=concurrent, blind=blind)

    def _live_workers_seen(self, count: int) -> None:
        """A worker of this process counted ``count`` live worker processes (itself
        included) as it registered, renewed its leases or claimed: it writes several
        batches at once only while it is the only one."""
        self._live_counted_at = time.monotonic()
        self._committer.set_leaders(BATCHES_WHEN_ALONE if count <= 1 else 1)

    def _live_workers_due(self) -> bool:
        """Whether a claim should count the live workers again (once a second at most)."""
        return time.monotonic() - self._live_counted_at >= RECOUNT_S

    def _read(self, fn: Callable[[Cursor], T]) -> T:
        return self._run(lambda _deadline: self._read_once(fn))

    def _run(self, attempt: Callable[[float], T]) -> T:
        """``attempt(deadline)``, again after each transient error until the deadline."""
        deadline = time.monotonic() + MAX_RETRY_S
        delay = FIRST_DELAY_S
        failures = 0
        while True:
            if self._closed:
                raise StoreError("the store is closed")
            try:
                return attempt(deadline)
            except psycopg.Error as exc:
                if not is_transient(exc):
                    raise self._store_error(exc) from exc
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"{self.safe_url}: still failing after {MAX_RETRY_S:g}s: {exc}"
                    ) from exc
                failures += 1
                if failures == 1:
                    log.warning("transient store error, retrying: %s", exc)
            time.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, MAX_DELAY_S)

    def _store_error(self, exc: psycopg.Error) -> StoreError:
        """A database error that retrying will not cure, as callers get it."""
        error = StoreError(f"{self.safe_url}: {exc}")
        error.__cause__ = exc
        return error

    def _note_opened(self, conn: psycopg.Connection[Any]) -> None:
        # The store's statements are short: compiling one (JIT) would cost more than running
        # it, and the cost that discourages a claim's sort would otherwise set it off. A
        # transaction with no BEGIN of its own (see ``_commit``) is READ COMMITTED, as every
        # BEGIN of the store says, whatever the server's default.
        conn.execute(
            "SELECT set_config('jit', 'off', false),"
            " set_config('default_transaction_isolation', 'read committed', false)"
        )
        with self._opened_lock:
            self._opened[conn] = (time.monotonic(), conn.info.backend_pid)

    def is_own_backend(self, pid: int) -> bool:
        """Whether ``pid`` is the server process of one of this store's open connections
        (whose notifications this store has already told its own listeners of)."""
        with self._opened_lock:
            return any(
                backend == pid and not (conn.closed or conn.broken)
                for conn, (_, backend) in self._opened.items()
            )

    def _notified(self, channels: set[str]) -> None:
        """A transaction of this store that sent ``NOTIFY`` on ``channels`` has committed:
        tell this process's listeners now (they ignore the server's word of it, which
        comes later; see :meth:`is_own_backend`)."""

    def _checkout(self) -> connection.Connection:
        """A pooled connection opened after the last connection loss, if one comes soon."""
        for _ in range(self._max_size):
            conn = self._pool.getconn()
            with self._opened_lock:
                opened_at = self._opened.get(conn, (0.0, 0))[0]
            if opened_at > self._lost_at:
                return conn
            conn.close()  # the pool replaces it with a new one
            self._pool.putconn(conn)
        return self._pool.getconn()

    @contextmanager
    def _connection(self) -> Iterator[_Checkout]:
        """A pooled connection for one attempt: dropped if the attempt lost it (noting the
        loss), rolled back if the attempt left a transaction open, then given back."""
        held = _Checkout(self._checkout())
        conn = held.conn
        try:
            yield held
        except psycopg.Error as exc:
            if _loses_connection(exc):
                held.discard = True
                if conn.broken or conn.closed:
                    self._lost_at = time.monotonic()
            raise
        finally:
            connection.forget(conn)
            if held.discard:
                conn.close()
            elif not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
            self._pool.putconn(conn)

    def _read_once(self, fn: Callable[[Cursor], T]) -> T:
        with self._connection() as held:
            conn = held.conn
            connection.begin(conn, connection.REPEATABLE_READ_ONLY)
            with conn.cursor(row_factory=dict_row) as cur:
                result = fn(cur)
                conn.commit()
            return result

    def _read_row(self, query: LiteralString, params: Any) -> Row | None:
        """The first row of one read-only statement, sent alone (no transaction around
        it: one statement sees one snapshot anyway), in one round trip."""
        return self._run(lambda _deadline: self._read_row_once(query, params))

    def _read_row_once(self, query: LiteralString, params: Any) -> Row | None:
        with self._connection() as held, held.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchone()

    def _write_batch(self, batch: Sequence[Work[Cursor, Any]]) -> None:
        """Commit the functions of ``batch`` that do not fail, in one transaction."""
        self._run(lambda deadline: self._write_once(batch, deadline))

    def _write_once(self, batch: Sequence[Work[Cursor, Any]], deadline: float) -> None:
        """One attempt at ``batch``: run its functions; if one fails for good, roll back
        and run the others again without it (if a send of what several deferred failed,
        again with each one's sent on its own, to find the one at fault); then send what
        they deferred, and ``COMMIT``. What is deferred is collected afresh for each
        transaction, so it is exactly what the committed functions left."""
        with self._connection() as held:
            conn = held.conn
            with conn.cursor(row_factory=dict_row) as cur:
                one_by_one = False
                while not all(work.failed for work in batch):
                    connection.begin(conn, connection.READ_COMMITTED)
                    end = _TxnEnd()
                    self._txns[id(cur)] = end
                    try:
                        failed = self._committer.run_items(cur, batch, one_by_one=one_by_one)
                    finally:
                        self._txns.pop(id(cur), None)
                    if failed is not None:
                        conn.rollback()
                        one_by_one = one_by_one or failed is Again.ONE_BY_ONE
                        continue
                    xid = self._transaction_id(cur, end, batch)
                    try:
                        self._commit(conn, cur, end)
                    except psycopg.Error as exc:
                        if not is_transient(exc) or (xid is None and end.probe is None):
                            raise
                        held.discard = True
                        if xid is not None and not self._committed(xid, deadline):
                            raise
                        if xid is None and end.probe and not self._created(end.probe, deadline):
                            raise
                    if end.audit:
                        self._sweeper.poke()
                    self._notified({channel for channel, _ in end.notify})
                    return

    def _transaction_id(
        self, cur: Cursor, end: _TxnEnd, batch: Sequence[Work[Cursor, Any]]
    ) -> str | None:
        """The id a lost ``COMMIT`` answer is looked up by: known from a statement that read
        it, not needed when every function of the batch said it changed nothing (the
        outcome of such a commit does not matter), else read now (None if unassigned)."""
        if end.xid is not None:
            return end.xid
        if not end.writes and end.unchanged == sum(not work.failed for work in batch):
            return None
        if end.probe is not None:
            return None  # a new run's id tells instead, with no round trip now
        xid: str | None = one(cur.execute(_ASSIGNED_XID if end.writes else _CURRENT_XID))["xid"]
        return xid

    def _commit(self, conn: psycopg.Connection[Any], cur: Cursor, end: _TxnEnd) -> None:
        """Send what the transaction deferred to its end, and ``COMMIT``."""
        if end.checks:  # the group committer settles these first; never answer after COMMIT
            later, end.later, checks, end.checks = end.later, [], end.checks, {}
            fences.send(cur, later, checks)
        later = [*end.later]
        entries = self._append_statement(end.audit) if end.audit else None
        wake = None
        if end.notify:  # however many, in one statement
            wake = (_NOTIFY_ALL, (json.dumps(end.notify, separators=(",", ":")),))
        if not later and entries is None and wake is None:
            conn.commit()
            return
        # A transaction that has sent nothing yet (a start that read nothing) needs no
        # BEGIN and no COMMIT: the server runs what is sent up to a sync as one implicit
        # transaction (committed at the sync, rolled back whole if any part fails), with
        # its READ COMMITTED default. If what it sends is only plain inserts and the
        # wake-ups, that is one statement (see :mod:`surefoot.store.postgres.merged`).
        implicit = connection.unsent(conn)
        if implicit:
            single = merged.one_statement([*later, *([entries] if entries else [])], wake)
            if single is not None:
                connection.forget(conn)
                cur.execute(*single)
                return
        # Otherwise the deferred writes, then the audit entries and the wake-ups (one
        # statement when there are both), and COMMIT, in one round trip. An error in any
        # of them aborts the COMMIT and is raised here, as the pipeline ends.
        last = [part for part in (entries, wake) if part is not None]
        joined = merged.one_statement([entries], wake) if entries and wake else None
        if joined is not None:
            last = [joined]
        with conn.pipeline():
            if implicit:
                connection.forget(conn)
            for statement in (*later, *last):
                cur.execute(*statement)
            if not implicit:
                cur.execute("COMMIT", prepare=False)

    def _sweep_audit(self) -> None:
        """Chain every pending audit entry committed before now (see
        :mod:`surefoot.store.postgres.audit`): the sweeper's work, and what a read of the
        log or of its head does first."""
        self._run(lambda _deadline: self._sweep_once())

    def _sweep_once(self) -> None:
        # Each statement commits on its own (the connection is in autocommit and no BEGIN
        # is pending). A lost answer is harmless: what the sweep took is no longer pending
        # if it committed, and the next sweep takes the rest.
        with self._connection() as held, held.conn.cursor(row_factory=dict_row) as cur:
            while one(cur.execute(audit.SWEEP_SQL))["taken"] >= audit.SWEEP_BATCH:
                pass

    def _created(self, run_id: str, deadline: float) -> bool:
        """After a ``COMMIT`` whose answer was lost, of a transaction that inserted run
        ``run_id`` and read no transaction id: did it commit? An insert of the same id
        waits for that transaction to end if it is still running (a key being inserted
        is waited for), then conflicts if it committed; the probe is rolled back."""
        while True:
            try:
                return self._run(lambda _deadline: self._probe_once(run_id))
            except StoreError as exc:
                still_running = isinstance(exc.__cause__, psycopg.errors.QueryCanceled)
                if not still_running or time.monotonic() > deadline:
                    raise StoreUnavailableError(
                        f"{self.safe_url}: the outcome of the transaction that inserted run "
                        f"{run_id} cannot be told; nothing will be retried blind"
                    ) from exc

    def _probe_once(self, run_id: str) -> bool:
        with self._connection() as held:
            conn = held.conn
            connection.begin(conn, connection.READ_COMMITTED)
            with conn.cursor() as cur:
                cur.execute(f"SET LOCAL statement_timeout = {PROBE_WAIT_MS}")
                inserted = cur.execute(_PROBE, (run_id,)).fetchone()
            conn.rollback()
        return inserted is None

    def _committed(self, xid: str, deadline: float) -> bool:
        """After a ``COMMIT`` whose answer was lost: did the transaction commit?"""
        delay = FIRST_DELAY_S
        while True:
            status = self._read(
                lambda cur: one(cur.execute("SELECT pg_xact_status(%s::xid8) AS s", (xid,)))["s"]
            )
            if status == "committed":
                return True
            if status == "aborted":
                return False
            if status is None or time.monotonic() > deadline:
                raise StoreUnavailableError(
                    f"{self.safe_url}: the outcome of transaction {xid} cannot be told "
                    f"(status {status!r}); nothing will be retried blind"
                )
            time.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, MAX_DELAY_S)

    # -- schema -------------------------------------------------------------------------
    def schema_version(self) -> int:
        def read(cur: Cursor) -> int:
            present = one(cur.execute("SELECT to_regclass('surefoot_schema') AS t"))["t"]
            if present is None:
                return 0
            return int(one(cur.execute("SELECT MAX(version) AS v FROM surefoot_schema"))["v"] or 0)

        return self._read(read)

    def migrate(self) -> int:
        """Apply missing migrations in one transaction, one migrator at a time."""

        def apply(cur: Cursor) -> int:
            cur.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (MIGRATION_LOCK,))
            cur.execute(SCHEMA_TABLE_DDL)
            current = int(
                one(cur.execute("SELECT COALESCE(MAX(version), 0) AS v FROM surefoot_schema"))["v"]
            )
            if current > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.safe_url} has schema {current}; code knows {SCHEMA_VERSION}"
                )
            for migration in load_migrations(self.dialect):
                if migration.version <= current:
                    continue
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO surefoot_schema VALUES (%s, %s, %s)",
                    (migration.version, migration.name, iso(datetime.now(UTC))),
                )
                current = migration.version
            return current

        return self._write(apply)

    # -- fencing, audit and wake-ups (called inside a write transaction) -------------------
    def _fence_txn(self, cur: Cursor, lease: Lease) -> Row:
        """Lock the run and check the lease; the row (and the transaction id, which the
        row lock assigns anyway, read here to save a round trip before ``COMMIT``)."""
        row = cur.execute(
            "SELECT *, pg_current_xact_id()::text AS surefoot_xid FROM runs"
            " WHERE run_id = %s FOR UPDATE",
            (lease.run_id,),
        ).fetchone()
        if row is not None:
            self._note_xid_txn(cur, row["surefoot_xid"])
        if row is None or not fences.holds(row, lease):
            raise fences.lost(lease)
        self._known_run(lease.run_id, row["correlation_id"], row["status"])
        return row

    def _write_fenced(
        self,
        lease: Lease,
        body: Callable[[Cursor, str | None, str], T],
        *,
        same_status: bool = False,
    ) -> T:
        """A write of the leased run's own rows, made by ``body(cur, correlation_id,
        status)`` of deferred statements only (``_later_txn``, ``_audit_txn``,
        ``_notify_txn``), fenced by the lease.

        When this worker knows the run (its correlation id, which never changes, and the
        status it last saw the run in or gave it), the lease check is deferred with the
        writes (see :mod:`surefoot.store.postgres.fences`) and the write is *blind*: it
        reads nothing, so in a batch what the writes before it deferred need not be sent
        first. With ``same_status`` the run must still be in the status known (for a run's
        end, whose audit entry records it); when it is not, or the run is not known, the
        run is locked and read first and ``body`` gets what its row says."""
        known = self._leased.get(lease.run_id)
        if known is not None:
            correlation_id, status, _ = known
            expected = fences.Check(lease, status if same_status else None)

            def blind(cur: Cursor) -> T:
                end = self._end_of(cur)
                end.checks[len(end.later)] = expected
                end.later.append((fences.CHECK_SQL, (lease.run_id,)))
                return body(cur, correlation_id, status)

            try:
                return self._write(blind, concurrent=True, blind=True)
            except fences.StatusChanged:
                pass  # made again below, with the run read first: nothing was written

        def read_first(cur: Cursor) -> T:
            row = self._fence_txn(cur, lease)
            return body(cur, row["correlation_id"], row["status"])

        return self._write(read_first, concurrent=True)

    def _known_run(
        self, run_id: str, correlation_id: str | None, status: str, *, open_reviews: bool = True
    ) -> None:
        """Remember a leased run's correlation id, the status it was last seen in or given
        by this worker, and whether it may have open review items (forgotten when it ends
        or waits)."""
        if len(self._leased) >= MAX_KNOWN_RUNS:
            self._leased.clear()  # a bound, not a cache policy: it refills from claims
        self._leased[run_id] = _Known(correlation_id, status, open_reviews)

    def _may_have_open_reviews(self, run_id: str) -> bool:
        """Whether a leased run may have open review items (True when not known)."""
        known = self._leased.get(run_id)
        return known is None or known.open_reviews

    def _gave_status(self, run_id: str, status: str) -> None:
        """This worker committed ``status`` for its leased run."""
        known = self._leased.get(run_id)
        if known is not None:
            self._leased[run_id] = known._replace(status=status)

    def _forget_run(self, run_id: str) -> None:
        self._leased.pop(run_id, None)

    def _end_of(self, cur: Cursor) -> _TxnEnd:
        end = self._txns.get(id(cur))
        if end is None:
            raise StoreError("only a write transaction can defer work to its end")
        return end

    def _changed_nothing_txn(self, cur: Cursor) -> None:
        """This transaction function changed no row (it may have locked some): whether its
        transaction commits does not matter, so it needs no transaction id. Only for a
        function that is sure of it; a lost ``COMMIT`` answer then re-runs the batch."""
        self._end_of(cur).unchanged += 1

    def _note_xid_txn(self, cur: Cursor, xid: str) -> None:
        """The transaction's id, read by a statement it ran anyway (so not again)."""
        self._end_of(cur).xid = xid

    def _later_txn(self, cur: Cursor, sql: str, params: Any) -> None:
        """Run a write whose result the transaction does not need with its last
        statements, in the round trip of ``COMMIT`` (before the audit append).

        Only for writes that nothing later in the transaction function reads, to rows
        the transaction has already locked a parent of (the run), or will lock with a
        lease check deferred before them (:meth:`_write_fenced`), so that deferring them
        changes neither what commits nor which locks are waited for before the head. In
        a batch, a later function may read them: they are sent before the next function
        that reads runs (:meth:`_send_later_txn`), and only the last ones wait for
        ``COMMIT``.
        """
        self._end_of(cur).later.append((sql, params))

    def _must_settle(self, cur: Cursor, shared: bool) -> bool:
        """Whether what the last function of a batch deferred must be sent before
        ``COMMIT``: it holds a lease check, whose failure is that function's own, or,
        when the batch has other functions (``shared``), an insert that may fail."""
        end = self._end_of(cur)
        return bool(end.checks) or (shared and end.fallible)

    def _send_later_txn(self, cur: Cursor) -> None:
        """Send the writes deferred so far, now: in a batch, before the next transaction
        function, which may read what they change (in one round trip)."""
        end = self._end_of(cur)
        if end.later:
            end.fallible = False
            later, end.later = end.later, []
            checks, end.checks = end.checks, {}
            xid = fences.send(cur, later, checks)
            if xid is not None:
                end.xid = end.xid or xid

    def _audit_txn(self, cur: Cursor, record: AuditRecord, now: datetime) -> None:
        """Record ``record`` in the audit chain, in this transaction.

        The entry is queued and appended by :meth:`_append_statement`'s statement when the
        transaction function returns, in the order queued, right before ``COMMIT``;
        if the transaction rolls back, so does the entry (and the other way round).
        """
        self._end_of(cur).audit.append((record, now))

    @staticmethod
    def _append_statement(queued: list[tuple[AuditRecord, datetime]]) -> tuple[str, list[Any]]:
        """The one statement that stores ``queued``, in order, for the chain (see
        :mod:`surefoot.store.postgres.audit`): its one parameter is the rows, as JSON."""
        rows = [entry_row(record, iso(now)) for record, now in queued]
        return audit.STORE_SQL, [json.dumps(rows)]

    def _notify_txn(self, cur: Cursor, payload: str, *, channel: str = NOTIFY_CHANNEL) -> None:
        """Tell listeners, on commit: by default workers, that a run in queue ``payload``
        can be claimed; on ``FINISHED_CHANNEL`` waiting clients, that run ``payload`` ended
        (sent once each, by a statement queued with the transaction's last ones)."""
        end = self._end_of(cur)
        if (channel, payload) not in end.notify:
            end.notify.append((channel, payload))
