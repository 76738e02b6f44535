"""Wake-ups by LISTEN/NOTIFY on PostgreSQL: a worker with a long poll interval still
takes new work at once, survives losing its listening connection, and sits quiet when
there is nothing to do. A negative control shows the timing depends on NOTIFY.

Runs are started (and events sent) by a second App with its own store, so no
in-process wake-up can reach the worker: only the database's notifications can.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import surefoot as sf
from surefoot.errors import StoreError
from surefoot.store.postgres import PostgresStore, listen
from surefoot.store.postgres import execution as pg_execution
from surefoot.store.postgres.base import NOTIFY_CHANNEL
from tests import postgres_support
from tests.contract.support import ACTOR, T0, new_run
from tests.postgres_support import PostgresServer

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

T = TypeVar("T")
MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]

POLL_S = 5.0  # the worker's poll interval: far longer than any prompt wake-up
PROMPT_S = 2.0  # what "at once" means here, with room for a slow machine
SLOW_POLLING: dict[str, Any] = {"poll_interval_s": POLL_S, "heartbeat_s": 1.0, "lease_s": 10.0}
LISTENER_THREAD = "surefoot-listen"


@pytest.fixture
def store_url(postgres_url: str) -> str:
    """Every app of these tests (``make_app``) uses this test's PostgreSQL database."""
    return postgres_url


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


# -- helpers ---------------------------------------------------------------------------------------
def wait_until(probe: Callable[[], T | None], *, timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.02)


def listening_backends(url: str) -> list[int]:
    """Backends of this test's database whose last statement was a LISTEN."""
    dbname = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'"
            " AND pid <> pg_backend_pid() ORDER BY pid",
            (dbname,),
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def wait_listening(url: str, *, other_than: int | None = None) -> int:
    """The pid of the one listening backend, once there is one (a new one: ``other_than``)."""

    def probe() -> int | None:
        pids = [pid for pid in listening_backends(url) if pid != other_than]
        return pids[0] if len(pids) == 1 else None

    return wait_until(probe, timeout_s=10, what="the listener to LISTEN")


def terminate(server: PostgresServer, pid: int) -> None:
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def listener_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == LISTENER_THREAD}


class ClaimCounter:
    """Counts the claim queries a store makes (the worker's polls and wake-ups)."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = store.claim

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(store, "claim", counting)


def declare(app: sf.App) -> tuple[Callable[..., Any], Callable[..., Any]]:
    @app.step(name="listen.double")
    def double(n: int) -> int:
        return n * 2

    @app.workflow(name="listen.echo")
    def echo(ctx: sf.WorkflowContext, n: int) -> int:
        return double(n)

    @app.workflow(name="listen.waiting")
    def waiting(ctx: sf.WorkflowContext, n: int) -> int:
        payload = ctx.wait_for("go", timeout_s=60)
        return int(payload["n"]) + n

    return echo, waiting


def settled_worker(
    make_app: MakeApp, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> tuple[sf.Worker, ClaimCounter]:
    """A worker polling every POLL_S that has made its first claims and now sleeps."""
    app = make_app("worker", **SLOW_POLLING)
    declare(app)
    claims = ClaimCounter(app.store, monkeypatch)
    worker = start_worker(app)
    wait_until(lambda: claims.count, timeout_s=10, what="the worker's first claim")
    return worker, claims


def time_one_run(client: sf.App) -> float:
    echo, _ = declare(client)
    started = time.monotonic()
    assert client.start(echo, 21).result(timeout=3 * POLL_S) == 42
    return time.monotonic() - started


# -- prompt wake-ups -------------------------------------------------------------------------------
def test_a_run_started_elsewhere_is_taken_at_once_not_at_the_next_poll(
    make_app: MakeApp,
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
):
    settled_worker(make_app, start_worker, monkeypatch)
    wait_listening(postgres_url)
    time.sleep(0.3)  # the wake-up that follows LISTEN has been used up

    elapsed = time_one_run(make_app("client"))

    assert elapsed < PROMPT_S, f"took {elapsed:.2f}s with a {POLL_S:g}s poll interval"


def test_without_notifications_the_same_run_waits_for_the_poll(
    make_app: MakeApp, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch, postgres_url: str
):
    """Negative control: with subscribe a no-op, the test above would fail."""
    monkeypatch.setattr(PostgresStore, "subscribe", lambda _store, _wake, **_kw: lambda: None)
    settled_worker(make_app, start_worker, monkeypatch)
    time.sleep(0.3)
    assert listening_backends(postgres_url) == []

    elapsed = time_one_run(make_app("client"))

    assert elapsed >= PROMPT_S, f"took only {elapsed:.2f}s: something else woke the worker"


def test_an_event_sent_elsewhere_wakes_its_waiting_run_at_once(
    make_app: MakeApp, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch, postgres_url: str
):
    settled_worker(make_app, start_worker, monkeypatch)
    wait_listening(postgres_url)
    client = make_app("client")
    _, waiting = declare(client)
    handle = client.start(waiting, 1)
    wait_until(lambda: handle.status() is sf.RunStatus.WAITING, timeout_s=PROMPT_S, what="the wait")
    time.sleep(0.3)

    sent = time.monotonic()
    client.send_event(handle.run_id, "go", {"n": 41})
    assert handle.result(timeout=3 * POLL_S) == 42
    elapsed = time.monotonic() - sent

    assert elapsed < PROMPT_S, f"took {elapsed:.2f}s with a {POLL_S:g}s poll interval"


def _woken_by_a_run_ended_elsewhere(
    store: PostgresStore, make_app: MakeApp, start_worker: StartWorker, postgres_url: str
) -> bool:
    """Whether a change subscriber of ``store`` hears a run that a worker of another App
    ends, within PROMPT_S, with no poll of its own."""
    woken = threading.Event()
    unsubscribe = store.subscribe_changes(woken.set)
    assert unsubscribe is not None
    wait_listening(postgres_url)
    time.sleep(0.3)
    woken.clear()  # the wake-up that follows LISTEN
    worker_app = make_app("worker")
    declare(worker_app)
    start_worker(worker_app)
    client = make_app("client")
    echo, _ = declare(client)
    handle = client.start(echo, 21)
    heard = woken.wait(PROMPT_S)
    if heard:
        run = store.get_run(handle.run_id)
        assert run is not None
        assert run.status is sf.RunStatus.SUCCEEDED  # told after the COMMIT, not before
    unsubscribe()
    return heard


def test_a_run_ended_elsewhere_wakes_those_waiting_for_results(
    store: PostgresStore, make_app: MakeApp, start_worker: StartWorker, postgres_url: str
):
    assert _woken_by_a_run_ended_elsewhere(store, make_app, start_worker, postgres_url)


def test_without_the_end_notification_nothing_wakes_those_waiting_for_results(
    store: PostgresStore,
    make_app: MakeApp,
    start_worker: StartWorker,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """Negative control: the run's end announced on another channel is not heard."""
    monkeypatch.setattr(pg_execution, "FINISHED_CHANNEL", "surefoot_elsewhere")
    assert not _woken_by_a_run_ended_elsewhere(store, make_app, start_worker, postgres_url)


def test_an_idle_worker_makes_no_claims_between_polls(
    make_app: MakeApp, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch, postgres_url: str
):
    _, claims = settled_worker(make_app, start_worker, monkeypatch)
    wait_listening(postgres_url)
    time.sleep(0.3)
    before = claims.count

    time.sleep(1.5)

    assert claims.count == before, "the listener woke the worker with nothing to do"


# -- this process's own notifications --------------------------------------------------------------
class WakeCounter:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.count += 1


def subscribed_and_settled(store: PostgresStore, postgres_url: str) -> WakeCounter:
    """A subscriber to ``store``'s wake-ups, once the wake-up after LISTEN has come."""
    woken = WakeCounter()
    store.subscribe(woken)
    wait_listening(postgres_url)
    wait_until(lambda: woken.count, timeout_s=10, what="the wake-up after LISTEN")
    time.sleep(0.3)
    return woken


def own_run_wakes(store: PostgresStore, postgres_url: str, *, settle_s: float) -> tuple[int, int]:
    """Wake-ups of a subscriber of ``store`` by a run the store itself created: by the
    time ``create_run`` returned, and in all once ``settle_s`` passed (or a second came)."""
    woken = subscribed_and_settled(store, postgres_url)
    before = woken.count
    store.create_run(new_run(), T0, ACTOR)
    at_return = woken.count - before
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and woken.count - before < 2:
        time.sleep(0.02)
    return at_return, woken.count - before


def test_a_run_this_store_created_wakes_its_subscribers_once_as_it_commits(
    store: PostgresStore, postgres_url: str
):
    # Told as the commit returns, and not again when the server's NOTIFY reaches the
    # listener (a worker in this process would otherwise make a second, empty claim).
    assert own_run_wakes(store, postgres_url, settle_s=1.0) == (1, 1)


def test_a_listener_that_heeds_this_stores_own_notifications_is_caught(
    store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: the server's word of the store's own commit wakes again (perhaps
    # even before ``create_run`` returns).
    assert store._listener is not None
    monkeypatch.setattr(store._listener, "_own", lambda _pid: False)
    at_return, in_all = own_run_wakes(store, postgres_url, settle_s=10.0)
    assert at_return >= 1
    assert in_all == 2


def test_a_notification_from_another_connection_still_wakes(
    store: PostgresStore, postgres_url: str
):
    woken = subscribed_and_settled(store, postgres_url)
    before = woken.count
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute(f"NOTIFY {NOTIFY_CHANNEL}, 'default'")
    wait_until(lambda: woken.count > before, timeout_s=10, what="the other connection's NOTIFY")


# -- losing the listening connection ---------------------------------------------------------------
def test_a_listener_whose_connection_is_cut_reconnects_and_still_wakes_the_worker(
    make_app: MakeApp,
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
    postgres_url: str,
):
    worker, _ = settled_worker(make_app, start_worker, monkeypatch)
    assert listener_threads(), "the worker's store started a listener thread"
    first = wait_listening(postgres_url)

    terminate(postgres_server, first)
    second = wait_listening(postgres_url, other_than=first)
    time.sleep(0.3)
    elapsed = time_one_run(make_app("client"))

    assert second != first
    assert elapsed < PROMPT_S, f"took {elapsed:.2f}s after the listener reconnected"
    assert worker.stats.errors == 0


def test_runs_announced_while_the_listener_was_away_are_taken_when_it_returns(
    make_app: MakeApp,
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer,
    postgres_url: str,
):
    """A notification sent with nobody listening is lost: after reconnecting the listener
    wakes the worker once, so a run started in the gap does not wait for the poll."""
    held = threading.Event()  # set: reconnects wait at the gate
    gate = threading.Event()
    waiting_at_gate = threading.Event()
    real_connect = listen._connect

    def gated_connect(conninfo: str) -> psycopg.Connection[Any]:
        if held.is_set():
            waiting_at_gate.set()
            gate.wait(30)
        return real_connect(conninfo)

    monkeypatch.setattr(listen, "_connect", gated_connect)
    settled_worker(make_app, start_worker, monkeypatch)
    first = wait_listening(postgres_url)
    client = make_app("client")
    echo, _ = declare(client)

    held.set()
    terminate(postgres_server, first)
    wait_until(waiting_at_gate.is_set, timeout_s=10, what="the listener to try reconnecting")
    handle = client.start(echo, 21)  # its NOTIFY reaches nobody
    time.sleep(0.3)
    assert handle.status() is sf.RunStatus.PENDING, "nothing but the listener could wake it"

    reopened = time.monotonic()
    gate.set()
    assert handle.result(timeout=3 * POLL_S) == 42
    elapsed = time.monotonic() - reopened

    assert elapsed < PROMPT_S, f"took {elapsed:.2f}s after the listener returned"


# -- subscriptions and closing -----------------------------------------------------------------
def test_subscribers_share_one_connection_and_the_last_to_leave_closes_it(
    store: PostgresStore, postgres_url: str
):
    before = listener_threads()
    woken = [threading.Event(), threading.Event()]
    unsubscribe = [store.subscribe(event.set) for event in woken]
    wait_listening(postgres_url)
    (thread,) = listener_threads() - before

    def notify_and_wait(events: list[threading.Event]) -> bool:
        for event in woken:
            event.clear()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, 'default')", (NOTIFY_CHANNEL,))
        return all(event.wait(PROMPT_S) for event in events)

    assert wait_until(lambda: woken[0].is_set() and woken[1].is_set(), timeout_s=5, what="wake")
    assert notify_and_wait(woken), "every subscriber is woken"
    assert len(listening_backends(postgres_url)) == 1

    unsubscribe[0]()
    assert notify_and_wait([woken[1]]), "the remaining subscriber still is"
    assert not woken[0].is_set()
    assert thread.is_alive()

    started = time.monotonic()
    unsubscribe[1]()
    stopped_s = time.monotonic() - started
    unsubscribe[1]()  # a second call changes nothing

    assert not thread.is_alive()
    assert stopped_s < 1.0, f"stopping took {stopped_s:.2f}s"
    wait_until(lambda: not listening_backends(postgres_url), timeout_s=5, what="disconnect")


def test_closing_the_store_stops_its_listener(postgres_url: str):
    opened = PostgresStore(postgres_url)
    before = listener_threads()
    opened.subscribe(lambda: None)
    wait_listening(postgres_url)
    (thread,) = listener_threads() - before

    opened.close()

    assert not thread.is_alive()
    wait_until(lambda: not listening_backends(postgres_url), timeout_s=5, what="disconnect")
    with pytest.raises(StoreError, match="closed"):
        opened.subscribe(lambda: None)


def test_a_failing_subscriber_does_not_stop_the_others(store: PostgresStore, postgres_url: str):
    def broken() -> None:
        raise RuntimeError("a subscriber's own bug")

    woken = threading.Event()
    store.subscribe(broken)
    store.subscribe(woken.set)
    wait_listening(postgres_url)
    time.sleep(0.1)
    woken.clear()

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, 'default')", (NOTIFY_CHANNEL,))

    assert woken.wait(PROMPT_S)


def test_the_listener_never_logs_the_password(
    postgres_server: PostgresServer, postgres_url: str, caplog: pytest.LogCaptureFixture
):
    parts = urlsplit(postgres_url)
    user = parts.username or "postgres"
    secret_url = urlunsplit(parts._replace(netloc=f"{user}:hunter2@{parts.hostname}:{parts.port}"))
    caplog.set_level(logging.DEBUG, logger="surefoot.store")
    opened = PostgresStore(secret_url)
    try:
        opened.subscribe(lambda: None)
        first = wait_listening(postgres_url)
        terminate(postgres_server, first)
        wait_listening(postgres_url, other_than=first)
    finally:
        opened.close()

    assert "has no connection, reconnecting" in caplog.text
    assert "listening on" in caplog.text
    assert "hunter2" not in caplog.text
