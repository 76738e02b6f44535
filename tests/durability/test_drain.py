"""Graceful drain: SIGTERM lets every run reach a step boundary and hands it back."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from surefoot.domain.status import AttemptOutcome, JournalStatus, RunStatus
from tests.durability.support.checks import exactly_once
from tests.durability.support.procs import wait_terminal, wait_until

RUNS = 6


@pytest.mark.slow
def test_sigterm_drains_runs_inside_slow_steps_without_losing_or_repeating_work(
    app, ledger, processes
):
    run_ids = [app.start("blind_flow", index, pause_s=0.3).run_id for index in range(RUNS)]
    draining = processes.worker()

    def all_inside_a_step() -> bool:
        return all(
            any(a.outcome is AttemptOutcome.RUNNING for a in app.store.list_attempts(run_id))
            for run_id in run_ids
        )

    wait_until(all_inside_a_step, timeout_s=10, what="every run to be inside a step")
    assert processes.stop(draining) == 0, draining.tail()

    for run_id in run_ids:
        run = app.store.get_run(run_id)
        assert run is not None
        # Handed back at the boundary after the step it was in: committed, not running.
        assert run.status is RunStatus.PENDING, run
        assert run.lease_owner is None
        journal = app.store.list_journal(run_id)
        assert [(e.position, e.status) for e in journal] == [(1, JournalStatus.COMMITTED)]
        actions = [
            e.action for e in app.store.audit_entries(after_seq=0, limit=1000, entity_id=run_id)
        ]
        assert "run.released" in actions
        outcomes = {a.outcome for a in app.store.list_attempts(run_id)}
        assert outcomes == {AttemptOutcome.SUCCEEDED}

    finishing = processes.worker()
    runs = wait_terminal(app.store, run_ids, timeout_s=15)
    assert processes.stop(finishing) == 0
    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    executions = Counter(e.idempotency_key for e in ledger.executions())
    assert len(executions) == RUNS * 2
    assert set(executions.values()) == {1}
    report = exactly_once(app.store, ledger, run_ids)
    assert report.ok, report.describe()


@pytest.mark.slow
def test_step_outliving_the_drain_timeout_has_exactly_one_effect(
    app, ledger, processes, start_worker
):
    # A careful step (not idempotent, with a reconcile hook) that takes longer than the
    # drain timeout: after the worker gives the run back, its body must not go on to
    # post the effect that the next worker's reconcile has already found missing.
    handle = app.start("careful_flow", 0, pause_s=2.0)
    draining = processes.worker(settings={"SUREFOOT_DRAIN_TIMEOUT_S": "0.3"})
    wait_until(
        lambda: any(
            a.outcome is AttemptOutcome.RUNNING for a in app.store.list_attempts(handle.run_id)
        ),
        timeout_s=10,
        what="the run to be inside its step",
    )
    draining.popen.send_signal(signal.SIGTERM)
    start_worker(app)

    runs = wait_terminal(app.store, [handle.run_id], timeout_s=15)
    assert processes.wait_exit(draining) == 0, draining.tail()
    assert runs[handle.run_id].status is RunStatus.SUCCEEDED
    report = exactly_once(app.store, ledger, [handle.run_id])
    assert report.ok, report.describe()
