"""Runs with one partition key execute in order, one at a time, across a worker crash."""

from __future__ import annotations

import pytest

from surefoot.domain.status import RunStatus
from tests.durability.support.checks import exactly_once
from tests.durability.support.procs import wait_terminal


@pytest.mark.slow
def test_partition_order_holds_when_the_worker_dies_inside_the_first_run(app, ledger, processes):
    first = app.start("keyed_flow", 0, pause_s=0.1, partition_key="account-7").run_id
    second = app.start("keyed_flow", 1, pause_s=0.1, partition_key="account-7").run_id
    processes.expect_killed(processes.worker(crash_at="step.attempt_committed@1"))
    # The worker died inside the first run; the second one had to wait its turn.
    assert app.store.list_attempts(second) == []

    finishing = processes.worker()
    runs = wait_terminal(app.store, [first, second], timeout_s=15)
    assert processes.stop(finishing) == 0
    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    first_done = runs[first].finished_at
    assert first_done is not None
    started = [a.started_at for a in app.store.list_attempts(second)]
    assert min(started) >= first_done
    report = exactly_once(app.store, ledger, [first, second])
    assert report.ok, report.describe()
