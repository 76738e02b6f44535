"""The engine on PostgreSQL: end to end, many workers, fencing, the audit chain, and
connection loss. Each test gets a fresh database cloned from a migrated template."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

import surefoot as sf
from surefoot.domain.records import (
    AttemptRecord,
    AttemptResult,
    DeadLetterFilter,
    JournalEntry,
    Lease,
    NewRun,
)
from surefoot.domain.status import (
    AttemptKind,
    AttemptOutcome,
    DeadLetterStatus,
    JournalKind,
    JournalStatus,
    ReviewStatus,
    RunStatus,
)
from surefoot.errors import (
    LeaseLostError,
    SchemaOutdatedError,
    SchemaTooNewError,
    StoreError,
    StoreUnavailableError,
)
from surefoot.ops import audit as audit_ops
from surefoot.ops import dead_letter as dead_letter_ops
from surefoot.ops import review as review_ops
from surefoot.store.base import SCHEMA_VERSION, RunEnd, Suspension
from surefoot.store.migrations import load_migrations, schema_sql
from surefoot.store.postgres import PostgresStore
from surefoot.store.postgres import base as pg_base
from surefoot.store.postgres.base import NOTIFY_CHANNEL
from tests import postgres_support
from tests.contract.support import at, claim_one
from tests.contract.test_store_operators import parked_run
from tests.integration.support.lost_commit import lose_next_commit_answer
from tests.postgres_support import PostgresServer

pytestmark = pytest.mark.postgres

# Fixtures: a fresh database per test, cloned from a template migrated once per session.
postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]


@pytest.fixture
def store_url(postgres_url: str) -> str:
    """Every app of these tests (``make_app``) uses this test's PostgreSQL database."""
    return postgres_url


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


class Ledger:
    """Effects of steps by idempotency key: a key seen twice is a step executed twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.effects: Counter[str] = Counter()

    def record(self) -> None:
        with self._lock:
            self.effects[sf.current_step().idempotency_key] += 1

    def duplicates(self) -> dict[str, int]:
        with self._lock:
            return {key: n for key, n in self.effects.items() if n > 1}


def declare_counting_flow(
    app: sf.App, ledger: Ledger, *, step_s: float = 0.0
) -> Callable[..., Any]:
    """A three-step workflow whose steps record their effect in ``ledger``."""

    @app.step(name="count.reserve")
    def reserve(n: int) -> int:
        time.sleep(step_s)
        ledger.record()
        return n + 1

    @app.step(name="count.charge")
    def charge(n: int) -> int:
        time.sleep(step_s)
        ledger.record()
        return n * 2

    @app.step(name="count.ship")
    def ship(n: int) -> str:
        time.sleep(step_s)
        ledger.record()
        return f"shipped-{n}"

    @app.workflow(name="count.flow")
    def flow(ctx: sf.WorkflowContext, n: int) -> str:
        return ship(charge(reserve(n)))

    return flow


# -- the engine end to end --------------------------------------------------------------------
def test_engine_runs_retries_waits_reviews_and_redrives_on_postgres(
    make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    calls: Counter[str] = Counter()
    fixed = threading.Event()

    @app.step(retry=sf.Retry(max_attempts=3))
    def fetch(invoice: str) -> dict[str, Any]:
        calls["fetch"] += 1
        if calls["fetch"] == 1:
            raise sf.TransientError("connection reset")
        return {"invoice": invoice, "amount": 120}

    @app.step
    def post(invoice: str) -> str:
        calls["post"] += 1
        if not fixed.is_set():
            raise sf.PermanentError("ledger account closed")
        return f"posted-{invoice}"

    @app.workflow
    def approve(ctx: sf.WorkflowContext, invoice: str) -> dict[str, Any]:
        data = fetch(invoice)
        ctx.sleep(0.05)
        extra = ctx.wait_for("documents", timeout_s=30)
        decision = ctx.review("approve", payload=data, actions=["approve", "reject"])
        return {"amount": data["amount"], "pages": extra["pages"], "action": decision.action}

    @app.workflow
    def book(ctx: sf.WorkflowContext, invoice: str) -> str:
        return post(invoice)

    start_worker(app)
    handle = app.start(approve, "INV-1", idempotency_key="INV-1")
    assert app.start(approve, "INV-1", idempotency_key="INV-1").run_id == handle.run_id
    app.send_event(handle.run_id, "documents", {"pages": 3})
    item = _wait_for_review(app, handle.run_id)
    assert review_ops.payload(item) == {"invoice": "INV-1", "amount": 120}
    review_ops.decide(app, item.item_id, "approve", actor="reviewer")
    assert handle.result(timeout=20) == {"amount": 120, "pages": 3, "action": "approve"}
    assert calls["fetch"] == 2  # one transient failure, one retry, never again on replay

    failing = app.start(book, "INV-2")
    with pytest.raises(sf.RunFailedError, match=r"\(permanent\)"):
        failing.result(timeout=20)
    dead = dead_letter_ops.get_dead_letter(app, failing.run_id)
    assert (dead.failure_class, dead.status) == (sf.FailureClass.PERMANENT, DeadLetterStatus.OPEN)
    assert calls["post"] == 1  # permanent: not retried

    fixed.set()
    dead_letter_ops.redrive(app, failing.run_id, actor="operator", reason="account reopened")
    assert failing.result(timeout=20) == "posted-INV-2"
    assert dead_letter_ops.get_dead_letter(app, failing.run_id).status is DeadLetterStatus.REDRIVEN
    assert app.store.list_dead_letters(DeadLetterFilter()) == []
    assert audit_ops.verify(app) == []


def _wait_for_review(app: sf.App, run_id: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for item in review_ops.list_reviews(app):
            if item.run_id == run_id:
                return item
        time.sleep(0.02)
    raise AssertionError(f"no review item for run {run_id} after {timeout_s}s")


# -- many workers -------------------------------------------------------------------------------
def test_two_workers_on_one_database_never_execute_a_step_twice(
    make_app: MakeApp, start_worker: StartWorker
):
    ledger = Ledger()
    first, second = make_app("first"), make_app("second")
    flow = declare_counting_flow(first, ledger, step_s=0.002)
    declare_counting_flow(second, ledger, step_s=0.002)
    workers = [start_worker(first, concurrency=4), start_worker(second, concurrency=4)]

    handles = [first.start(flow, n) for n in range(100)]
    results = [handle.result(timeout=60) for handle in handles]

    assert results == [f"shipped-{(n + 1) * 2}" for n in range(100)]
    assert ledger.duplicates() == {}
    assert len(ledger.effects) == 300
    assert all(worker.stats.claimed > 0 for worker in workers), "both workers took runs"
    assert audit_ops.verify(first) == []


def test_concurrent_starts_with_one_idempotency_key_create_one_run(store: PostgresStore):
    new = _new_run(idempotency_key="ORDER-7")

    def start(_: int) -> tuple[str, bool]:
        run, created = store.create_run(
            NewRun(**{**new.__dict__, "run_id": uuid.uuid4().hex}), T0, "tester"
        )
        return run.run_id, created

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(start, range(16)))

    assert len({run_id for run_id, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1


# -- fencing ------------------------------------------------------------------------------------
def test_a_stale_lease_writes_nothing(store: PostgresStore):
    store.create_run(_new_run(), T0, "tester")
    (stale,) = store.claim("old", workflows=["flow"], queues=None, limit=1, lease_s=1, now=T0)
    store.begin_attempt(stale.lease, _attempt(stale.lease, T0))
    later = T0 + timedelta(seconds=5)
    (fresh,) = store.claim("new", workflows=["flow"], queues=None, limit=1, lease_s=30, now=later)
    assert fresh.lease.epoch == stale.lease.epoch + 1
    assert [a.outcome for a in fresh.interrupted] == [AttemptOutcome.INTERRUPTED]
    before = _snapshot(store, stale.lease.run_id)

    lease = stale.lease
    succeeded = AttemptResult(AttemptOutcome.SUCCEEDED)
    journal = JournalEntry(
        lease.run_id, 1, JournalKind.STEP, "charge", JournalStatus.COMMITTED, later, '"x"'
    )
    stale_writes: list[Callable[[], object]] = [
        lambda: store.begin_attempt(lease, _attempt(lease, later, number=2)),
        lambda: store.finish_attempt(
            lease,
            position=1,
            kind=AttemptKind.STEP,
            attempt=1,
            result=succeeded,
            journal=journal,
            now=later,
        ),
        lambda: store.commit_journal(lease, journal),
        lambda: store.consume_event(lease, position=2, name="go", now=later),
        lambda: store.suspend(lease, Suspension(RunStatus.WAITING, "sleep", wake_at=later), later),
        lambda: store.finish_run(lease, RunEnd(RunStatus.SUCCEEDED, output='"x"'), later),
        lambda: store.start_compensating(lease, "stale", None, later),
        lambda: store.commit_compensation(
            lease, position=1, step="charge", attempt=1, output=None, now=later
        ),
        lambda: store.release(lease, later, interrupt_open_attempts=True),
    ]
    for write in stale_writes:
        with pytest.raises(LeaseLostError):
            write()

    assert _snapshot(store, lease.run_id) == before
    assert store.heartbeat("old", [lease], 30, later) == ({lease.run_id}, set())


def _snapshot(store: PostgresStore, run_id: str) -> dict[str, Any]:
    return {
        "run": store.get_run(run_id),
        "attempts": store.list_attempts(run_id),
        "journal": store.list_journal(run_id),
        "compensated": store.compensated_positions(run_id),
        "audit_head": store.audit_head(),
    }


# -- the audit chain ------------------------------------------------------------------------------
def test_audit_chain_verifies_after_concurrent_work(make_app: MakeApp, start_worker: StartWorker):
    ledger = Ledger()
    app = make_app()
    flow = declare_counting_flow(app, ledger)

    @app.workflow(name="count.waiting")
    def waiting(ctx: sf.WorkflowContext, n: int) -> int:
        payload = ctx.wait_for("go", timeout_s=30)
        return int(payload["n"]) + n

    start_worker(app, concurrency=4)
    start_worker(app, concurrency=4)

    def client(k: int) -> list[sf.RunHandle]:
        handles = [app.start(flow, k), app.start(waiting, k)]
        app.send_event(handles[1].run_id, "go", {"n": 10})
        return handles

    with ThreadPoolExecutor(8) as pool:
        handles = [h for batch in pool.map(client, range(24)) for h in batch]
    for handle in handles:
        handle.result(timeout=60)

    assert audit_ops.verify(app) == []
    entries = list(audit_ops.entries(app))
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert app.store.audit_head() == (entries[-1].seq, entries[-1].hash)
    assert ledger.duplicates() == {}


# -- connection loss ------------------------------------------------------------------------------
def test_runs_complete_without_duplicate_effects_when_connections_are_cut(
    make_app: MakeApp,
    start_worker: StartWorker,
    postgres_server: PostgresServer,
    store_url: str,
):
    ledger = Ledger()
    app = make_app()
    flow = declare_counting_flow(app, ledger, step_s=0.02)
    worker = start_worker(app, concurrency=2)
    dbname = urlsplit(store_url).path.lstrip("/")
    cut: list[int] = []
    stop = threading.Event()

    def cutter() -> None:
        while not stop.wait(0.1):
            cut.append(postgres_server.terminate_backends(dbname))

    handles = [app.start(flow, n) for n in range(30)]
    thread = threading.Thread(target=cutter, daemon=True)
    thread.start()
    try:
        results = [handle.result(timeout=90) for handle in handles]
    finally:
        stop.set()
        thread.join()

    assert sum(1 for n in cut if n > 0) >= 3, f"connections were cut while it ran: {cut}"
    assert results == [f"shipped-{(n + 1) * 2}" for n in range(30)]
    assert ledger.duplicates() == {}
    assert len(ledger.effects) == 90
    assert worker.stats.errors == 0  # every store error was retried inside the store
    assert audit_ops.verify(app) == []


# -- transient and permanent errors ----------------------------------------------------------
@pytest.mark.parametrize("committed", [True, False], ids=["committed", "rolled-back"])
def test_a_write_whose_commit_answer_is_lost_is_applied_exactly_once(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch, committed: bool
):
    store.create_run(_new_run(), T0, "tester")
    (claimed,) = store.claim("w", workflows=["flow"], queues=None, limit=1, lease_s=30, now=T0)
    head_before = store.audit_head()
    assert head_before is not None
    lost = lose_next_commit_answer(monkeypatch, committed=committed)
    # Re-running this insert after it committed would break the attempts' primary key.
    store.begin_attempt(claimed.lease, _attempt(claimed.lease, T0))
    monkeypatch.undo()

    assert lost == [True]
    assert [a.attempt for a in store.list_attempts(claimed.lease.run_id)] == [1]
    head_after = store.audit_head()
    assert head_after is not None
    assert head_after[0] == head_before[0] + 1
    assert store.audit_entries(after_seq=0, limit=100)[-1].action == "attempt.started"


def test_a_claim_that_found_nothing_and_lost_its_commit_answer_is_run_again(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    # It changed nothing, so it reads no transaction id: the lost answer re-runs it.
    lost = lose_next_commit_answer(monkeypatch, committed=True)
    claimed = store.claim("w", workflows=["flow"], queues=None, limit=1, lease_s=30, now=T0)
    monkeypatch.undo()
    assert lost == [True]
    assert claimed == []


def test_a_non_transient_error_is_a_store_error_with_its_cause(
    store: PostgresStore, postgres_url: str
):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE workers")
    with pytest.raises(StoreError) as caught:
        store.register_worker("w", "host", 1, [], T0)
    assert isinstance(caught.value.__cause__, psycopg.errors.UndefinedTable)
    assert not isinstance(caught.value, StoreUnavailableError)


# -- opening, schema and notifications ------------------------------------------------------
def test_an_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailableError, match="cannot reach"):
        PostgresStore("postgresql://postgres:secret@127.0.0.1:1/nowhere?connect_timeout=2")


def test_the_password_never_appears_in_errors():
    with pytest.raises(StoreUnavailableError) as caught:
        PostgresStore("postgresql://postgres:hunter2@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "hunter2" not in str(caught.value)


def test_schema_versions_are_checked_like_sqlite(postgres_url: str):
    opened = PostgresStore(postgres_url)
    assert opened.schema_version() == SCHEMA_VERSION
    opened.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO surefoot_schema VALUES (%s, 'future', now())", (99,))
    with pytest.raises(SchemaTooNewError):
        PostgresStore(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DELETE FROM surefoot_schema")
    with pytest.raises(SchemaOutdatedError):
        PostgresStore(postgres_url, auto_migrate=False)


def test_concurrent_first_starts_migrate_once(postgres_server: PostgresServer):
    with postgres_server.database(empty=True) as url:

        def open_and_close(_: int) -> int:
            opened = PostgresStore(url)
            try:
                return opened.schema_version()
            finally:
                opened.close()

        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(open_and_close, range(6))) == {SCHEMA_VERSION}
        with psycopg.connect(url) as conn:
            applied = conn.execute("SELECT version, name FROM surefoot_schema").fetchall()
        assert applied == [(m.version, m.name) for m in load_migrations("postgres")]


def test_schema_sql_builds_the_same_schema_as_migrating(postgres_server: PostgresServer):
    with (
        postgres_server.database(empty=True) as from_text,
        postgres_server.database(empty=True) as migrated,
    ):
        with psycopg.connect(from_text, autocommit=True) as conn:
            conn.execute(schema_sql("postgres"))
        PostgresStore(migrated).close()
        assert _catalog(from_text) == _catalog(migrated)
        opened = PostgresStore(from_text, auto_migrate=False)
        assert opened.schema_version() == SCHEMA_VERSION
        assert opened.audit_head() is None
        opened.close()


def _catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Tables, columns, indexes and constraints of the public schema."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default,"
        " collation_name, is_identity FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = 'public' ORDER BY tablename, indexname",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        " ORDER BY 1, 2",
        "audit_head": "SELECT only_row, seq, hash FROM audit_head",
    }
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in queries.items()}


def test_claimable_runs_are_announced_with_notify(store: PostgresStore, postgres_url: str):
    with psycopg.connect(postgres_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        store.create_run(_new_run(queue="invoices"), T0, "tester")
        received = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert received == ["invoices"]


def queues_announced_by_one_commit(store: PostgresStore, postgres_url: str) -> list[str]:
    """The wake-ups heard after one transaction started runs in three queues (sent in
    one statement with its COMMIT)."""
    with psycopg.connect(postgres_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        news = [_new_run(queue=name) for name in ("invoices", "payments", "invoices", "refunds")]
        store.create_runs(news, T0, "tester")
        return [n.payload for n in listener.notifies(timeout=2, stop_after=3)]


def test_every_wake_up_of_a_transaction_is_announced_once_in_order(
    store: PostgresStore, postgres_url: str
):
    assert queues_announced_by_one_commit(store, postgres_url) == [
        "invoices",
        "payments",
        "refunds",
    ]


def test_a_transaction_that_announces_only_its_first_wake_up_is_caught(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the statement sending several wake-ups sends only the first.
    monkeypatch.setattr(pg_base, "_NOTIFY_ALL", f"{pg_base._NOTIFY_ALL} LIMIT 1")
    assert queues_announced_by_one_commit(store, postgres_url) == ["invoices"]


def review_left_open_by_a_run_end(store: PostgresStore, postgres_url: str) -> ReviewStatus:
    """A run claimed with an open review item (made claimable behind the store's back, the
    shortest way there) and then ended: the status its item is left in."""
    parked, item = parked_run(store)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE runs SET status = 'pending' WHERE run_id = %s", (parked,))
    claimed = claim_one(store, "w2", at(3))
    assert claimed.history.reviews[1][0].status is ReviewStatus.OPEN
    store.finish_run(claimed.lease, RunEnd(RunStatus.CANCELLED), at(4))
    review = store.get_review(item.item_id)
    assert review is not None
    return review.status


def test_a_run_ended_with_an_open_review_item_closes_it(store: PostgresStore, postgres_url: str):
    assert review_left_open_by_a_run_end(store, postgres_url) is ReviewStatus.CANCELLED


def test_a_run_end_that_never_closes_review_items_is_caught(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: a worker sure that its runs have no open review items.
    monkeypatch.setattr(PostgresStore, "_may_have_open_reviews", lambda _self, _run_id: False)
    assert review_left_open_by_a_run_end(store, postgres_url) is ReviewStatus.OPEN


# -- builders ----------------------------------------------------------------------------------
def _new_run(*, idempotency_key: str | None = None, queue: str = "default") -> NewRun:
    return NewRun(
        run_id=uuid.uuid4().hex,
        workflow="flow",
        queue=queue,
        inputs='{"n":1}',
        inputs_hash="h1",
        idempotency_key=idempotency_key,
    )


def _attempt(lease: Lease, now: datetime, *, number: int = 1) -> AttemptRecord:
    return AttemptRecord(
        run_id=lease.run_id,
        position=1,
        kind=AttemptKind.STEP,
        attempt=number,
        generation=0,
        step="charge",
        idempotency_key=f"{lease.run_id}:1",
        outcome=AttemptOutcome.RUNNING,
        started_at=now,
        worker_id=lease.worker_id,
    )
