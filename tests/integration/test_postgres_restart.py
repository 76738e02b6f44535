"""A PostgreSQL server restart in the middle of work: nothing is lost or done twice.

The local cluster serving the test database is restarted with ``pg_ctlcluster``
while a worker executes runs whose steps post non-idempotent effects to a ledger
outside the store. Skipped where the cluster cannot be controlled (no
``pg_ctlcluster``, a remote server, no permission), unless
``SUREFOOT_REQUIRE_POSTGRES=1``. The server is always running again at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import psycopg
import pytest

import surefoot as sf
from surefoot.ops import audit as audit_ops
from tests import postgres_support
from tests.durability.support.ledger import Ledger
from tests.postgres_support import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

T = TypeVar("T")
MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]

RUNS = 30
STEP_S = 0.1
POLL_S = 5.0  # long: after the restart, only the listener can make a new run prompt
PROMPT_S = 2.0
COMMAND_TIMEOUT_S = 60.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@pytest.fixture
def store_url(postgres_url: str) -> str:
    return postgres_url


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str

    def control(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )


def cannot(reason: str) -> NoReturn:
    if postgres_support.required():
        pytest.fail(f"{reason} ({postgres_support.REQUIRE_VARIABLE}=1)")
    pytest.skip(reason)


def local_cluster(server: PostgresServer) -> Cluster:
    """The cluster on this machine that serves the test server's port."""
    parts = urlsplit(server.admin_url)
    if parts.hostname not in LOOPBACK:
        cannot(f"the test server is not on this machine: {parts.hostname}")
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        cannot("pg_ctlcluster is not available to restart the server")
    port = str(parts.port or 5432)
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == port and fields[3] == "online":
            return Cluster(fields[0], fields[1])
    cannot(f"no online cluster on port {port} in pg_lsclusters: {listing.stdout!r}")


def ensure_running(server: PostgresServer, cluster: Cluster) -> None:
    if server.unreachable_reason() is None:
        return
    cluster.control("start")
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while server.unreachable_reason() is not None:
        assert time.monotonic() < deadline, "the server did not come back"
        time.sleep(0.2)


def server_started_at(url: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    assert row is not None
    return row[0]


def wait_until(probe: Callable[[], T | None], *, timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.05)


def listening(url: str) -> bool:
    dbname = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (dbname,),
        ).fetchone()
    return row is not None and row[0] == 1


def declare(app: sf.App, ledger: Ledger) -> Callable[..., Any]:
    """Three steps, each posting an effect the ledger keeps once per execution."""

    def post(label: str) -> str:
        time.sleep(STEP_S)
        return ledger.apply(f"{sf.current_step().step}:{label}", idempotent=False)

    reserve, invoice, ship = (
        app.step(name=f"restart.{name}")(post) for name in ("reserve", "invoice", "ship")
    )

    @app.workflow(name="restart.flow")
    def flow(ctx: sf.WorkflowContext, label: str) -> list[str]:
        return [reserve(label), invoice(label), ship(label)]

    return flow


def test_a_server_restart_mid_run_loses_nothing_and_repeats_no_effect(
    make_app: MakeApp,
    start_worker: StartWorker,
    postgres_server: PostgresServer,
    postgres_url: str,
    tmp_path: Path,
):
    cluster = local_cluster(postgres_server)
    ledger = Ledger(tmp_path / "ledger.db")
    app = make_app("worker", poll_interval_s=POLL_S, heartbeat_s=1.0, lease_s=10.0)
    flow = declare(app, ledger)
    worker = start_worker(app, concurrency=4)
    first_start = server_started_at(postgres_url)
    handles = [app.start(flow, f"run-{n}") for n in range(RUNS)]
    try:
        wait_until(
            lambda: sum(h.status() is sf.RunStatus.SUCCEEDED for h in handles) >= 3,
            timeout_s=20,
            what="the first runs to finish",
        )
        unfinished = sum(not h.status().is_terminal for h in handles)
        restarted = cluster.control("restart")
        if restarted.returncode != 0:
            cannot(f"pg_ctlcluster restart failed: {restarted.stderr.strip()}")
        results = [handle.result(timeout=60) for handle in handles]
    finally:
        ensure_running(postgres_server, cluster)

    assert unfinished > 0, "the restart came while runs were in flight"
    assert server_started_at(postgres_url) != first_start, "the server really restarted"
    assert results == [
        [f"restart.{step}:run-{n}" for step in ("reserve", "invoice", "ship")] for n in range(RUNS)
    ]
    effects = ledger.effect_counts()
    assert {key: n for key, n in effects.items() if n > 1} == {}, "an effect was repeated"
    assert len(effects) == 3 * RUNS
    assert audit_ops.verify(app) == []

    # The worker lives on, and its listener is back: a run started elsewhere is prompt.
    assert worker.stats.errors == 0
    assert any(t.name == f"surefoot-worker-{worker.worker_id}" for t in threading.enumerate())
    wait_until(lambda: listening(postgres_url), timeout_s=15, what="the listener to return")
    client = make_app("client")
    other = declare(client, ledger)
    started = time.monotonic()
    assert client.start(other, "after").result(timeout=3 * POLL_S)[0] == "restart.reserve:after"
    assert time.monotonic() - started < PROMPT_S
