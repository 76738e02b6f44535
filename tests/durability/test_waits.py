"""Durable waits survive kill -9 of the worker and resume on another one."""

from __future__ import annotations

import pytest

import surefoot as sf
from surefoot.domain.status import RunStatus
from tests.durability.support.checks import exactly_once
from tests.durability.support.flows import EVENT
from tests.durability.support.procs import wait_terminal

SLEEP_S = 1.0


@pytest.mark.slow
def test_sleep_and_event_waits_resume_on_a_new_worker_after_kill(app, ledger, processes):
    sleeper = app.start("sleep_flow", 0, sleep_s=SLEEP_S).run_id
    listener = app.start("event_flow", 1).run_id
    # The worker dies right after the second wait is committed.
    processes.expect_killed(processes.worker(crash_at="wait.suspended@2"))

    asleep, waiting = app.store.get_run(sleeper), app.store.get_run(listener)
    assert asleep is not None
    assert waiting is not None
    assert (asleep.status, asleep.wait_reason) == (RunStatus.WAITING, "sleep")
    assert asleep.wake_at is not None
    assert (waiting.status, waiting.waiting_for) == (RunStatus.WAITING, EVENT)
    # No worker is running: the event is committed and waits for one.
    app.send_event(listener, EVENT, {"by": "ops"})

    resuming = processes.worker()
    runs = wait_terminal(app.store, [sleeper, listener], timeout_s=15)
    assert processes.stop(resuming) == 0
    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    assert app.handle(sleeper).result(timeout=1) == ["waits.before:b0", "waits.after:a0"]
    assert app.handle(listener).result(timeout=1) == ["waits.before:b1", "waits.after:a1:ops"]

    # The step after the sleep did not start before the sleep was over.
    after = [e for e in ledger.executions() if e.run_id == sleeper and e.step == "waits.after"]
    assert len(after) == 1
    assert after[0].started_at >= asleep.wake_at.timestamp()
    report = exactly_once(app.store, ledger, [sleeper, listener])
    assert report.ok, report.describe()


def test_durable_waits_are_not_counted_as_poison_deliveries(make_app, start_worker):
    # Each wake-up is a new claim; a run that waits often but always makes progress
    # is healthy, and must not be dead-lettered as a poison run.
    app: sf.App = make_app("poller", max_deliveries=3)

    @app.workflow(name="poller")
    def poller(ctx: sf.WorkflowContext, checks: int) -> int:
        for _ in range(checks):
            ctx.sleep(0.01)
        return checks

    start_worker(app)
    assert app.start("poller", 5).result(timeout=10) == 5
