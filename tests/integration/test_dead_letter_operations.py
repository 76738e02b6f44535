"""Operators work the dead-letter queue: redrive one run after a fix (from the failed
step, nothing committed re-run), redrive many by filter, discard with a reason."""

from __future__ import annotations

import pytest

import surefoot as sf
from surefoot.domain.records import DeadLetterFilter
from surefoot.domain.status import DeadLetterStatus
from surefoot.errors import InvalidTransitionError
from surefoot.ops import dead_letter as dead_letter_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import checkout
from tests.integration.support.probes import audit_actions, dead_letter, step_attempts

TRANSIENT = sf.FailureClass.TRANSIENT
TWO_TRIES = {"retry": sf.Retry(max_attempts=2)}


def _dead_lettered(handle: sf.RunHandle) -> None:
    with pytest.raises(sf.RunFailedError, match=r"\(transient\)"):
        handle.result(timeout=10)


def test_redrive_after_a_fix_completes_from_the_failed_step_without_duplicates(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    flow = checkout(app, server.url, charge_options=TWO_TRIES)
    start_worker(app)
    handle = flow.start()
    _dead_lettered(handle)
    assert len(server.effects("reservations")) == 1
    assert server.effects("payments") == []

    server.heal()
    dead_letter_ops.redrive(app, handle.run_id, actor="operator", reason="payments API fixed")
    result = handle.result(timeout=10)

    # The reservation committed before the failure was not made again.
    assert len(server.posts("reservations")) == 1
    assert [e.effect_id for e in server.effects("reservations")] == [result["reservation"]]
    assert [e.effect_id for e in server.effects("payments")] == [result["payment"]]
    assert [e.effect_id for e in server.effects("shipments")] == [result["shipment"]]
    assert server.reversals() == []
    assert len(step_attempts(app, handle.run_id, "checkout.reserve")) == 1
    charges = step_attempts(app, handle.run_id, "checkout.charge")
    assert [(a.generation, a.outcome) for a in charges] == [
        (0, sf.AttemptOutcome.FAILED),
        (0, sf.AttemptOutcome.FAILED),
        (1, sf.AttemptOutcome.SUCCEEDED),
    ]
    assert {a.idempotency_key for a in charges} == {f"{handle.run_id}:2"}
    dead = dead_letter(app, handle.run_id)
    assert (dead.status, dead.resolved_by, dead.resolution) == (
        DeadLetterStatus.REDRIVEN,
        "operator",
        "payments API fixed",
    )
    assert ("dead_letter.redriven", "operator", "payments API fixed") in audit_actions(
        app, handle.run_id
    )
    with pytest.raises(InvalidTransitionError):  # no longer in the dead-letter queue
        dead_letter_ops.redrive(app, handle.run_id, actor="operator")


def test_redrive_without_a_fix_dead_letters_the_run_again(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    flow = checkout(app, server.url, charge_options=TWO_TRIES)
    start_worker(app)
    handle = flow.start()
    _dead_lettered(handle)

    dead_letter_ops.redrive(app, handle.run_id, actor="operator")
    _dead_lettered(handle)

    assert len(server.posts("payments")) == 4  # a fresh retry budget, then given up again
    assert len(server.posts("reservations")) == 1
    entries = dead_letter_ops.list_dead_letters(app, DeadLetterFilter(status=None))
    assert [(d.generation, d.status) for d in entries] == [
        (0, DeadLetterStatus.REDRIVEN),
        (1, DeadLetterStatus.OPEN),
    ]


def test_bulk_redrive_by_filter_touches_exactly_the_matching_runs(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    orders = checkout(app, server.url, name="orders", charge_options=TWO_TRIES)
    refunds = checkout(app, server.url, name="refunds", charge_options=TWO_TRIES)
    start_worker(app)
    matching = [orders.start(f"o-{n}") for n in range(3)]
    others = [refunds.start(f"r-{n}") for n in range(2)]
    for handle in matching + others:
        _dead_lettered(handle)
    server.heal()

    result = dead_letter_ops.bulk(
        app,
        DeadLetterFilter(workflow="orders", failure_class=TRANSIENT),
        lambda run_id: dead_letter_ops.redrive(app, run_id, actor="operator", reason="bulk"),
    )

    assert (result.matched, result.done, result.refused) == (3, 3, {})
    for handle in matching:
        handle.result(timeout=10)
    for handle in others:
        assert handle.status() is sf.RunStatus.FAILED
        assert dead_letter(app, handle.run_id).status is DeadLetterStatus.OPEN
    paid = sorted(e.body["order_id"] for e in server.effects("payments"))
    assert paid == ["o-0", "o-1", "o-2"]
    still_open = dead_letter_ops.list_dead_letters(app, DeadLetterFilter())
    assert sorted(d.run_id for d in still_open) == sorted(h.run_id for h in others)


def test_bulk_action_reports_refusals_and_continues(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    server.fail_next("shipments", Fault.http(400))
    app = make_app()
    flow = checkout(app, server.url, charge_options=TWO_TRIES)
    start_worker(app)
    exhausted = flow.start("o-1")
    _dead_lettered(exhausted)
    server.heal("payments")
    compensated = flow.start("o-2")  # fails permanently at shipping and is compensated
    with pytest.raises(sf.RunFailedError):
        compensated.result(timeout=10)

    result = dead_letter_ops.bulk(
        app,
        DeadLetterFilter(workflow="checkout"),
        lambda run_id: dead_letter_ops.redrive(app, run_id, actor="operator"),
    )

    assert (result.matched, result.done) == (2, 1)
    assert result.refused is not None
    assert list(result.refused) == [compensated.run_id]
    exhausted.result(timeout=10)


def test_discard_needs_a_reason_and_is_audited(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    flow = checkout(app, server.url, charge_options=TWO_TRIES)
    start_worker(app)
    handle = flow.start()
    _dead_lettered(handle)

    with pytest.raises(InvalidTransitionError, match="reason"):
        dead_letter_ops.discard(app, handle.run_id, actor="operator", reason="   ")
    assert dead_letter(app, handle.run_id).status is DeadLetterStatus.OPEN
    assert not any(a == "dead_letter.discarded" for a, _, _ in audit_actions(app))

    dead_letter_ops.discard(app, handle.run_id, actor="operator", reason="duplicate order")

    dead = dead_letter(app, handle.run_id)
    assert (dead.status, dead.resolved_by, dead.resolution) == (
        DeadLetterStatus.DISCARDED,
        "operator",
        "duplicate order",
    )
    assert dead_letter_ops.list_dead_letters(app, DeadLetterFilter()) == []
    assert ("dead_letter.discarded", "operator", "duplicate order") in audit_actions(
        app, handle.run_id
    )
    assert handle.status() is sf.RunStatus.FAILED
    with pytest.raises(InvalidTransitionError):  # a discarded run cannot be redriven
        dead_letter_ops.redrive(app, handle.run_id, actor="operator")
