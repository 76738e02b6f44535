"""Operators act on runs: fork from a position with edited input (earlier committed steps
reused, not re-run), cancel a waiting run (compensations run), pause and resume a queue."""

from __future__ import annotations

import time

import pytest

import surefoot as sf
from surefoot.domain.status import ReviewStatus
from surefoot.errors import InvalidTransitionError
from surefoot.ops import queues as queue_ops
from surefoot.ops import review as review_ops
from surefoot.ops import runs as run_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import checkout
from tests.integration.support.probes import (
    audit_actions,
    compensation_attempts,
    parked_review,
    step_attempts,
    wait_for_status,
)

QUIET_S = 0.5  # 25 worker polls: long enough for a claimable run to have been claimed


def test_fork_reuses_committed_steps_before_the_position_and_runs_from_there(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    flow = checkout(app, server.url, charge_options={"retry": sf.Retry(max_attempts=2)})
    start_worker(app)
    source = flow.start("o-1", 100)
    with pytest.raises(sf.RunFailedError):
        source.result(timeout=10)
    server.heal()

    forked = run_ops.fork_run(
        app, source.run_id, from_position=2, inputs={"order_id": "o-1", "amount": 80}, actor="ops"
    )
    result = app.handle(forked.run_id).result(timeout=10)

    assert forked.run_id != source.run_id
    assert (forked.forked_from_run_id, forked.forked_at_position) == (source.run_id, 2)
    # The reservation from the source run is reused: no second reservation was made.
    [reservation] = server.effects("reservations")
    assert len(server.posts("reservations")) == 1
    assert result["reservation"] == reservation.effect_id
    assert step_attempts(app, forked.run_id, "checkout.reserve") == []
    # From position 2 on the fork executed, with the edited amount.
    [payment] = server.effects("payments")
    assert payment.body == {"order_id": "o-1", "amount": 80}
    assert payment.key == f"{forked.run_id}:2"
    assert len(server.effects("shipments")) == 1
    assert source.status() is sf.RunStatus.FAILED  # the source run is left as it was
    assert ("run.forked", "ops", None) in audit_actions(app, forked.run_id)


def test_fork_from_the_first_position_re_executes_every_step(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    flow = checkout(app, server.url)
    start_worker(app)
    source = flow.start("o-1", 100)
    source.result(timeout=10)

    forked = run_ops.fork_run(app, source.run_id, from_position=1, actor="ops")
    app.handle(forked.run_id).result(timeout=10)

    for collection in ("reservations", "payments", "shipments"):
        assert [e.key.split(":")[0] for e in server.effects(collection)] == [
            source.run_id,
            forked.run_id,
        ]


def test_cancel_of_a_waiting_run_cancels_it_and_runs_compensations(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    flow = checkout(app, server.url, wait_for_event="warehouse-ready")
    start_worker(app)
    handle = flow.start()
    waiting = wait_for_status(app, handle.run_id, sf.RunStatus.WAITING)
    assert waiting.wait_reason == "event:warehouse-ready"

    run_ops.cancel_run(app, handle.run_id, actor="operator", reason="customer cancelled")

    with pytest.raises(sf.RunCancelledError):
        handle.result(timeout=10)
    assert handle.status() is sf.RunStatus.CANCELLED
    payment = server.effects("payments")[0]
    reservation = server.effects("reservations")[0]
    assert [(r.collection, r.effect_id) for r in server.reversals()] == [
        ("payments", payment.effect_id),
        ("reservations", reservation.effect_id),
    ]
    assert [a.position for a in compensation_attempts(app, handle.run_id)] == [2, 1]
    assert server.posts("shipments") == []
    assert ("run.cancel_requested", "operator", "customer cancelled") in audit_actions(
        app, handle.run_id
    )
    with pytest.raises(InvalidTransitionError):
        run_ops.cancel_run(app, handle.run_id, actor="operator", reason="again")


def test_cancel_of_a_run_waiting_for_a_retry_stops_it_without_another_attempt(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(503, retry_after=30))
    app = make_app(instant_retries=False)
    flow = checkout(app, server.url)
    start_worker(app)
    handle = flow.start()
    waiting = wait_for_status(app, handle.run_id, sf.RunStatus.WAITING)
    assert waiting.wait_reason == "retry:checkout.charge"

    run_ops.cancel_run(app, handle.run_id, actor="operator", reason="customer cancelled")

    with pytest.raises(sf.RunCancelledError):
        handle.result(timeout=10)
    assert [r.outcome for r in server.posts("payments")] == ["503"]
    assert [r.collection for r in server.reversals()] == ["reservations"]


def test_cancel_of_a_run_parked_for_review_cancels_the_item_and_compensates(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("shipments", Fault.http(422))
    app = make_app()
    flow = checkout(app, server.url)
    start_worker(app)
    handle = flow.start()
    item = parked_review(app, handle.run_id)

    run_ops.cancel_run(app, handle.run_id, actor="operator", reason="order withdrawn")

    with pytest.raises(sf.RunCancelledError):
        handle.result(timeout=10)
    assert review_ops.get_review(app, item.item_id).status is ReviewStatus.CANCELLED
    assert [r.collection for r in server.reversals()] == ["payments", "reservations"]
    with pytest.raises(InvalidTransitionError):
        review_ops.decide(app, item.item_id, "retry", actor="reviewer")


def test_a_paused_queue_is_not_claimed_until_resumed(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    held = checkout(app, server.url, name="held", queue="payments-eu")
    free = checkout(app, server.url, name="free", queue="payments-us")
    queue_ops.pause(app, "payments-eu", actor="operator", reason="bank maintenance")
    start_worker(app)

    held_run = held.start("eu-1")
    free_run = free.start("us-1")
    free_run.result(timeout=10)  # other queues keep flowing
    time.sleep(QUIET_S)

    assert held_run.status() is sf.RunStatus.PENDING
    assert [e.body["order_id"] for e in server.effects("reservations")] == ["us-1"]
    assert ("payments-eu", True, 1) in queue_ops.list_queues(app)

    queue_ops.resume(app, "payments-eu", actor="operator")
    held_run.result(timeout=10)

    assert sorted(e.body["order_id"] for e in server.effects("payments")) == ["eu-1", "us-1"]
    actions = audit_actions(app, "payments-eu")
    assert ("queue.paused", "operator", "bank maintenance") in actions
    assert ("queue.resumed", "operator", None) in actions
