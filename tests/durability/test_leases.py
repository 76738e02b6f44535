"""Leases: an unresponsive worker's runs are taken over after the lease expires, never before."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

import surefoot as sf
from surefoot.domain.status import AttemptOutcome, RunStatus
from tests.durability.support.checks import exactly_once
from tests.durability.support.procs import wait_terminal
from tests.durability.support.scenarios import wait_inside_a_step

LEASE_S = 3.0
RUNS = 4


@pytest.mark.slow
def test_unresponsive_workers_runs_are_taken_over_only_after_their_lease_expires(
    app, ledger, processes, start_worker
):
    run_ids = [app.start("keyed_flow", index, pause_s=0.5).run_id for index in range(RUNS)]
    # The dying worker writes its steps' starts first, so "inside a step" can be seen.
    dying = processes.worker(
        settings={"SUREFOOT_LEASE_S": str(LEASE_S), "SUREFOOT_RECORD_IDEMPOTENT_STARTS": "true"}
    )

    wait_inside_a_step(app, run_ids, timeout_s=10)
    # Frozen, not dead: its process still exists, so nothing but the lease's expiry can
    # free its runs (a worker whose process is gone is taken over at once; see
    # test_dead_worker_takeover).
    os.kill(dying.pid, signal.SIGSTOP)
    held = {run_id: app.store.get_run(run_id) for run_id in run_ids}
    expiries = {}
    for run_id, run in held.items():
        assert run is not None
        assert run.status is RunStatus.RUNNING
        assert run.lease_expires_at is not None
        expiries[run_id] = run.lease_expires_at
    dead_owner = {run.lease_owner for run in held.values() if run is not None}
    assert len(dead_owner) == 1

    rescuer_started_at = datetime.now(UTC)
    rescuer = start_worker(app)
    # The rescuer was polling for well over a second while the leases were still live.
    assert rescuer_started_at < min(expiries.values()) - timedelta(seconds=1)
    runs = wait_terminal(app.store, run_ids, timeout_s=15)
    processes.kill(dying)

    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    for run_id in run_ids:
        entries = app.store.audit_entries(after_seq=0, limit=1000, entity_id=run_id)
        takeovers = [e for e in entries if e.action == "run.taken_over"]
        assert len(takeovers) == 1, [(e.at, e.actor, e.before) for e in takeovers]
        takeover = takeovers[0]
        assert datetime.fromisoformat(takeover.at) >= expiries[run_id]
        assert takeover.before["lease_owner"] in dead_owner
        assert takeover.actor == f"worker:{rescuer.worker_id}"
        interrupted = [
            a for a in app.store.list_attempts(run_id) if a.outcome is AttemptOutcome.INTERRUPTED
        ]
        assert len(interrupted) == 1
        assert interrupted[0].finished_at is not None
        assert interrupted[0].finished_at >= expiries[run_id]

    report = exactly_once(app.store, ledger, run_ids)
    assert report.ok, report.describe()


@pytest.mark.slow
def test_run_that_kills_every_worker_is_dead_lettered_as_poison(app, processes):
    # Each worker dies on the run's first step; after max_deliveries claims without
    # progress the next worker stops the run instead of dying on it again.
    handle = app.start("keyed_flow", 0)
    poisoned = {"SUREFOOT_MAX_DELIVERIES": "2"}
    for _ in range(2):
        processes.expect_killed(
            processes.worker(crash_at="step.attempt_committed@1", settings=poisoned)
        )
    survivor = processes.worker(crash_at="step.attempt_committed@1", settings=poisoned)
    runs = wait_terminal(app.store, [handle.run_id], timeout_s=10)
    assert processes.stop(survivor) == 0, survivor.tail()

    assert runs[handle.run_id].status is RunStatus.FAILED
    dead = app.store.get_dead_letter(handle.run_id)
    assert dead is not None
    assert dead.failure_class is sf.FailureClass.PERMANENT
    assert "poison" in dead.reason
    # The first death left no attempt (an idempotent step's start is written with its end);
    # the takeover wrote the second one's first, so it shows.
    outcomes = [a.outcome for a in app.store.list_attempts(handle.run_id)]
    assert outcomes == [AttemptOutcome.INTERRUPTED]


def test_live_worker_never_loses_its_own_runs_to_a_stale_heartbeat(make_app, start_worker):
    # Runs that suspend and wake often on one healthy worker: a heartbeat that renewed
    # a lease the run has since given up must not revoke the run's next execution.
    app: sf.App = make_app("ticker", heartbeat_s=0.01, lease_s=1.0)

    @app.step(name="tick", idempotent=True)
    def tick(i: int) -> int:
        return i

    @app.workflow(name="ticker")
    def ticker(ctx: sf.WorkflowContext, ticks: int) -> int:
        for i in range(ticks):
            tick(i)
            ctx.sleep(0.01)
        return ticks

    start_worker(app)
    handles = [app.start("ticker", 15) for _ in range(4)]
    for handle in handles:
        assert handle.result(timeout=30) == 15
    for handle in handles:
        entries = app.store.audit_entries(after_seq=0, limit=10_000, entity_id=handle.run_id)
        assert [e.action for e in entries if e.action == "run.taken_over"] == []
