"""A worker killed with SIGKILL has its runs taken over by a worker on the same host as soon
as that worker sees its process is gone, long before the leases would expire; each committed
step ran once. A worker whose process lives (even frozen), or that registered from another
host, boot or pid namespace, is never declared dead: only lease expiry frees its runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from surefoot.domain.status import AttemptOutcome, RunStatus
from surefoot.engine.worker import this_process
from surefoot.observability import metrics
from tests import postgres_support
from tests.durability.support.checks import exactly_once
from tests.durability.support.procs import wait_terminal, wait_until
from tests.durability.support.scenarios import wait_inside_a_step

postgres_server = postgres_support.postgres_server  # session fixture: the template database

RUNS = 4
LONG_LEASE_S = 30.0  # a takeover within the test's time can only come from the dead pid


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """This module's tests run on both stores."""
    if request.param == "postgresql":
        server: postgres_support.PostgresServer = request.getfixturevalue("postgres_server")
        with server.database() as url:
            yield url
        return
    yield f"sqlite:///{tmp_path / 'surefoot.db'}"


def dying_worker_settings(lease_s: float) -> dict[str, str]:
    # The worker writes its steps' starts first, so "inside a step" can be seen.
    return {
        "SUREFOOT_LEASE_S": str(lease_s),
        "SUREFOOT_HEARTBEAT_S": str(min(1.0, lease_s / 3)),
        "SUREFOOT_RECORD_IDEMPOTENT_STARTS": "true",
    }


def owners(app, run_ids: list[str]) -> set[str | None]:
    return {run.lease_owner for run in map(app.store.get_run, run_ids) if run is not None}


def declared_dead(app) -> list[str]:
    return [
        e.entity_id
        for e in app.store.audit_entries(after_seq=0, limit=10_000)
        if e.action == "worker.declared_dead"
    ]


@pytest.mark.slow
def test_killed_workers_runs_are_taken_over_long_before_its_lease_would_expire(
    app, ledger, processes, start_worker
):
    run_ids = [app.start("keyed_flow", index, pause_s=1.0).run_id for index in range(RUNS)]
    dying = processes.worker(settings=dying_worker_settings(LONG_LEASE_S))
    expiries = wait_inside_a_step(app, run_ids)
    (dead_owner,) = owners(app, run_ids)
    assert dead_owner is not None
    takeovers_before = metrics.sample("surefoot_lease_takeovers_total", {"workflow": "keyed_flow"})

    processes.kill(dying)
    rescuer = start_worker(app)
    runs = wait_terminal(app.store, run_ids, timeout_s=20)

    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    assert declared_dead(app) == [dead_owner]
    for run_id in run_ids:
        entries = app.store.audit_entries(after_seq=0, limit=1000, entity_id=run_id)
        actions = [e.action for e in entries]
        assert actions.count("run.lease_revoked") == 1
        assert actions.count("run.taken_over") == 1
        assert actions.index("run.lease_revoked") < actions.index("run.taken_over")
        takeover = entries[actions.index("run.taken_over")]
        assert takeover.actor == f"worker:{rescuer.worker_id}"
        assert takeover.before["lease_owner"] == dead_owner
        # Long before the lease would have run out: only the dead pid can explain it.
        at = datetime.fromisoformat(takeover.at)
        assert at < expiries[run_id] - timedelta(seconds=LONG_LEASE_S / 2)
        interrupted = [
            a for a in app.store.list_attempts(run_id) if a.outcome is AttemptOutcome.INTERRUPTED
        ]
        assert len(interrupted) == 1
    takeovers_after = metrics.sample("surefoot_lease_takeovers_total", {"workflow": "keyed_flow"})
    assert takeovers_after == takeovers_before + RUNS  # counted like an expiry takeover
    report = exactly_once(app.store, ledger, run_ids)
    assert report.ok, report.describe()


@pytest.mark.slow
def test_frozen_worker_on_this_host_is_not_declared_dead_and_keeps_its_runs_until_expiry(
    app, ledger, processes, start_worker
):
    lease_s = 4.0
    run_ids = [app.start("keyed_flow", index, pause_s=1.0).run_id for index in range(RUNS)]
    frozen = processes.worker(settings=dying_worker_settings(lease_s))
    expiries = wait_inside_a_step(app, run_ids)
    (owner,) = owners(app, run_ids)
    # Stopped, not killed: the process exists, it just does nothing (like a long pause).
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        rescuer_started_at = datetime.now(UTC)
        start_worker(app)
        runs = wait_terminal(app.store, run_ids, timeout_s=20)
        dead_while_frozen = declared_dead(app)
    finally:
        # Never let it resume: its step would act after the takeover (fenced, but the
        # ledger would see it).
        processes.kill(frozen)

    assert rescuer_started_at < min(expiries.values()) - timedelta(seconds=1)
    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    assert dead_while_frozen == []
    for run_id in run_ids:
        entries = app.store.audit_entries(after_seq=0, limit=1000, entity_id=run_id)
        assert "run.lease_revoked" not in [e.action for e in entries]
        (takeover,) = [e for e in entries if e.action == "run.taken_over"]
        assert takeover.before["lease_owner"] == owner
        assert datetime.fromisoformat(takeover.at) >= expiries[run_id]
    report = exactly_once(app.store, ledger, run_ids)
    assert report.ok, report.describe()


def test_worker_of_another_host_boot_or_namespace_is_never_declared_dead_by_pid(app, start_worker):
    me = this_process()
    assert me is not None
    # A pid that no process has any more, with the start time its process had.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    child.kill()
    child.wait(10)
    identities = {
        "same-host": (me.hostname, me.boot_id, me.namespace),
        "other-host": ("another-host", me.boot_id, me.namespace),
        "other-boot": (me.hostname, "another-boot", me.namespace),
        "other-namespace": (me.hostname, me.boot_id, "pid:[1]"),
    }
    now = datetime.now(UTC)
    for worker_id, (hostname, boot_id, namespace) in identities.items():
        app.store.register_worker_process(
            worker_id,
            hostname,
            child.pid,
            [],
            now,
            boot_id=boot_id,
            pid_namespace=namespace,
            process_started=started,
        )
    app.store.register_worker("older-code", me.hostname, child.pid, [], now)
    held: dict[str, str] = {}
    for worker_id in ("other-host", "other-boot", "other-namespace"):
        held[worker_id] = app.start("keyed_flow", len(held)).run_id
        (claimed,) = app.store.claim(
            worker_id,
            workflows=["keyed_flow"],
            queues=None,
            limit=1,
            lease_s=LONG_LEASE_S,
            now=now,
        )
        assert claimed.run.run_id == held[worker_id]

    start_worker(app)
    # The same-host worker is the positive control: once it is declared dead, the others
    # were looked at in the same check.
    wait_until(lambda: declared_dead(app) == ["same-host"], timeout_s=10, what="the check")

    stopped = {b.worker_id for b in app.store.worker_beats() if b.stopped_at is not None}
    assert stopped == {"same-host"}
    for worker_id, run_id in held.items():
        run = app.store.get_run(run_id)
        assert run is not None
        assert run.status is RunStatus.RUNNING
        assert run.lease_owner == worker_id
