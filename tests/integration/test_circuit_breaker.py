"""A circuit breaker per integration key stops hammering a failing server: after five
consecutive transient failures it opens and runs wait instead of calling out."""

from __future__ import annotations

import time

import surefoot as sf
from surefoot.domain.breaker import BreakerState
from surefoot.ops import queues as queue_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import single_charge
from tests.integration.support.probes import step_attempts, wait_for_status

QUIET_S = 0.5
THRESHOLD = 5  # the breaker's documented failure threshold


def test_five_consecutive_transient_failures_open_the_breaker_and_the_run_waits(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    pay = single_charge(app, server.url, breaker="payments", retry=sf.Retry(max_attempts=20))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    run = wait_for_status(app, handle.run_id, sf.RunStatus.WAITING)

    assert run.wait_reason == "breaker:payments"
    assert run.wake_at is not None
    [breaker] = app.store.get_breakers()
    assert (breaker.key, breaker.state) == ("payments", BreakerState.OPEN)
    assert breaker.consecutive_failures == THRESHOLD
    assert queue_ops.list_breakers(app) == [breaker]
    assert len(server.posts("payments")) == THRESHOLD
    assert len(step_attempts(app, handle.run_id)) == THRESHOLD  # 20 allowed

    time.sleep(QUIET_S)  # the server is left alone while the breaker is open
    assert len(server.posts("payments")) == THRESHOLD
    assert handle.status() is sf.RunStatus.WAITING


def test_an_open_breaker_holds_other_runs_sharing_its_key(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    pay = single_charge(app, server.url, breaker="payments", retry=sf.Retry(max_attempts=20))
    start_worker(app)
    first = app.start(pay, "o-1", 100)
    wait_for_status(app, first.run_id, sf.RunStatus.WAITING)

    second = app.start(pay, "o-2", 100)
    run = wait_for_status(app, second.run_id, sf.RunStatus.WAITING)

    assert run.wait_reason == "breaker:payments"
    assert step_attempts(app, second.run_id) == []
    assert [r.body["order_id"] for r in server.posts("payments")] == ["o-1"] * THRESHOLD


def test_a_success_resets_the_consecutive_failure_count(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", *[Fault.http(503)] * (THRESHOLD - 1))
    app = make_app()
    pay = single_charge(app, server.url, breaker="payments", retry=sf.Retry(max_attempts=20))
    start_worker(app)
    app.start(pay, "o-1", 100).result(timeout=10)

    server.fail_next("payments", *[Fault.http(503)] * (THRESHOLD - 1))
    app.start(pay, "o-2", 100).result(timeout=10)

    [breaker] = app.store.get_breakers()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert len(server.effects("payments")) == 2


def test_after_the_cooldown_one_probe_closes_the_breaker_and_waiting_runs_finish(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", *[Fault.http(503)] * THRESHOLD)
    app = make_app(breaker_failure_threshold=THRESHOLD, breaker_cooldown_s=0.5)
    pay = single_charge(app, server.url, breaker="payments", retry=sf.Retry(max_attempts=20))
    start_worker(app)
    first = app.start(pay, "o-1", 100)
    wait_for_status(app, first.run_id, sf.RunStatus.WAITING)
    second = app.start(pay, "o-2", 100)

    first.result(timeout=10)
    second.result(timeout=10)

    [breaker] = app.store.get_breakers()
    assert breaker.state is BreakerState.CLOSED
    outcomes = [r.outcome for r in server.posts("payments")]
    assert outcomes == ["503"] * THRESHOLD + ["committed", "committed"]
