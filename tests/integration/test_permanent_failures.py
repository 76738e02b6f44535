"""Permanent failures stop at once, undo committed steps newest first, and dead-letter
the run as compensated, which a plain redrive then refuses."""

from __future__ import annotations

import pytest

import surefoot as sf
from surefoot.errors import InvalidTransitionError
from surefoot.ops import dead_letter as dead_letter_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import checkout
from tests.integration.support.probes import compensation_attempts, dead_letter, step_attempts

PERMANENT = sf.FailureClass.PERMANENT


@pytest.mark.parametrize("status", [400, 401, 404])
def test_permanent_4xx_stops_after_one_attempt_without_retry(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker, status: int
):
    server.fail_always("payments", Fault.http(status))
    app = make_app()
    flow = checkout(app, server.url, charge_options={"retry": sf.Retry(max_attempts=5)})
    start_worker(app)

    handle = flow.start()
    with pytest.raises(sf.RunFailedError, match=r"\(permanent\)"):
        handle.result(timeout=10)

    assert len(server.posts("payments")) == 1  # five attempts allowed, one made
    [attempt] = step_attempts(app, handle.run_id, "checkout.charge")
    assert (attempt.outcome, attempt.failure_class, attempt.rule, attempt.route) == (
        sf.AttemptOutcome.FAILED,
        PERMANENT,
        "http:4xx",
        "fail",
    )
    assert server.posts("shipments") == []  # nothing after the failed step ran
    assert [r.collection for r in server.reversals()] == ["reservations"]


def test_permanent_failure_runs_compensations_in_reverse_order(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("shipments", Fault.http(400))
    app = make_app()
    flow = checkout(app, server.url)
    start_worker(app)

    handle = flow.start()
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)

    reservation = server.effects("reservations")[0]
    payment = server.effects("payments")[0]
    # Newest first: the payment is refunded before the reservation is released.
    assert [(r.collection, r.effect_id) for r in server.reversals()] == [
        ("payments", payment.effect_id),
        ("reservations", reservation.effect_id),
    ]
    undone = compensation_attempts(app, handle.run_id)
    assert [(a.position, a.step, a.outcome) for a in undone] == [
        (2, "checkout.charge", sf.AttemptOutcome.SUCCEEDED),
        (1, "checkout.reserve", sf.AttemptOutcome.SUCCEEDED),
    ]
    dead = dead_letter(app, handle.run_id)
    assert dead.failure_class is PERMANENT
    assert dead.compensated
    assert (dead.step, dead.position, dead.attempts) == ("checkout.ship", 3, 1)
    assert "400" in (dead.last_error or "")


def test_redrive_of_a_compensated_run_is_refused(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(404))
    app = make_app()
    flow = checkout(app, server.url)
    start_worker(app)
    handle = flow.start()
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)
    assert dead_letter(app, handle.run_id).compensated

    with pytest.raises(InvalidTransitionError, match="compensated"):
        dead_letter_ops.redrive(app, handle.run_id, actor="operator", reason="try again")

    # Nothing changed: the run stays failed and in the dead-letter queue, nothing re-ran.
    assert handle.status() is sf.RunStatus.FAILED
    assert dead_letter(app, handle.run_id).status.value == "open"
    assert len(server.posts("reservations")) == 1
    assert len(server.posts("payments")) == 1
