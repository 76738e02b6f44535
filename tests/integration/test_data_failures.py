"""Data failures park the run for a person with the step's inputs and errors; the
decision (retry with edited inputs, skip with a value, abort) resumes it."""

from __future__ import annotations

import json
from typing import Any

import pytest

import surefoot as sf
from surefoot.errors import InvalidDecisionError
from surefoot.ops import review as review_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import single_charge
from tests.integration.support.http import create
from tests.integration.support.probes import dead_letter, parked_review, step_attempts

DATA = sf.FailureClass.DATA
VALIDATION = {"errors": [{"field": "amount", "message": "amount must be positive"}]}


def _payload(item: Any) -> dict[str, Any]:
    data = review_ops.payload(item)
    assert isinstance(data, dict)
    return data


def test_http_422_parks_the_run_for_review_with_its_inputs(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url, retry=sf.Retry(max_attempts=5))
    start_worker(app)

    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    assert item.kind == "data"
    assert item.actions == ("retry", "skip", "abort")
    payload = _payload(item)
    assert payload["step"] == "charge"
    assert payload["inputs"] == {"order_id": "o-1", "amount": -5}
    assert (payload["failure_class"], payload["rule"]) == ("data", "http:422")
    assert payload["error"]["http_status"] == 422
    [attempt] = step_attempts(app, handle.run_id)  # isolated, not retried
    assert (attempt.failure_class, attempt.rule, attempt.route) == (DATA, "http:422", "review")
    assert server.effects() == []


def test_http_422_review_payload_shows_the_servers_validation_errors(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    """A reviewer must see what the server rejected to be able to correct it."""
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url)
    start_worker(app)

    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    assert "amount must be positive" in json.dumps(_payload(item))


def test_data_error_review_payload_carries_inputs_and_errors(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()

    @app.step(name="charge")
    def charge(order_id: str, amount: int) -> dict[str, Any]:
        if amount <= 0:
            raise sf.DataError(f"order {order_id} is invalid", errors=["amount must be positive"])
        return create(server.url, "payments", {"order_id": order_id, "amount": amount})

    @app.workflow(name="pay")
    def pay(ctx: sf.WorkflowContext, order_id: str, amount: int) -> dict[str, Any]:
        return charge(order_id, amount)

    start_worker(app)
    handle = app.start(pay, "o-1", 0)
    item = parked_review(app, handle.run_id)

    payload = _payload(item)
    assert item.kind == "data"
    assert payload["inputs"] == {"order_id": "o-1", "amount": 0}
    assert payload["error"]["errors"] == ["amount must be positive"]
    assert payload["message"] == "order o-1 is invalid"
    assert payload["rule"] == "declared"
    assert server.posts("payments") == []


def test_retry_with_edited_inputs_completes_using_the_new_inputs(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url)
    start_worker(app)
    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    review_ops.decide(
        app, item.item_id, "retry", actor="reviewer", inputs={"order_id": "o-1", "amount": 25}
    )
    record = handle.result(timeout=10)

    [effect] = server.effects("payments")
    assert effect.effect_id == record["id"]
    assert effect.body == {"order_id": "o-1", "amount": 25}
    assert [r.body for r in server.posts("payments")] == [
        {"order_id": "o-1", "amount": -5},
        {"order_id": "o-1", "amount": 25},
    ]
    first, second = step_attempts(app, handle.run_id)
    assert json.loads(second.inputs or "{}") == {"order_id": "o-1", "amount": 25}
    assert first.idempotency_key == second.idempotency_key
    assert review_ops.get_review(app, item.item_id).decided_by == "reviewer"


def test_skip_with_a_value_completes_with_it_and_the_step_does_not_run_again(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url)
    start_worker(app)
    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    with pytest.raises(InvalidDecisionError):
        review_ops.decide(app, item.item_id, "skip", actor="reviewer")  # a skip needs a value
    manual = {"id": "paid-by-phone", "key": "manual", "body": None}
    review_ops.decide(app, item.item_id, "skip", actor="reviewer", value=manual)

    assert handle.result(timeout=10) == manual
    assert len(server.posts("payments")) == 1  # only the rejected attempt
    assert server.effects() == []
    assert len(step_attempts(app, handle.run_id)) == 1


def test_abort_fails_the_run(server: FaultServer, make_app: MakeApp, start_worker: StartWorker):
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url)
    start_worker(app)
    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    review_ops.decide(app, item.item_id, "abort", actor="reviewer", comment="bad order")

    with pytest.raises(sf.RunFailedError, match=r"\(data\)"):
        handle.result(timeout=10)
    dead = dead_letter(app, handle.run_id)
    assert dead.failure_class is DATA
    assert "abort by reviewer" in dead.reason
    assert len(server.posts("payments")) == 1


def test_a_decision_the_item_does_not_allow_is_refused_and_changes_nothing(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url)
    start_worker(app)
    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    with pytest.raises(InvalidDecisionError):
        review_ops.decide(app, item.item_id, "approve", actor="reviewer")

    assert handle.status() is sf.RunStatus.NEEDS_REVIEW
    assert review_ops.get_review(app, item.item_id).status.value == "open"


@pytest.mark.parametrize(
    "inputs",
    [{"order_id": "o-1", "amount": "lots"}, {"amount": 25}],
    ids=["wrong-type", "missing-argument"],
)
def test_edited_inputs_that_do_not_fit_the_step_are_refused_and_change_nothing(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker, inputs: dict[str, Any]
):
    """A reviewer's mistyped edit is refused at once; it must not fail the parked run."""
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url)
    start_worker(app)
    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    with pytest.raises(InvalidDecisionError):
        review_ops.decide(app, item.item_id, "retry", actor="reviewer", inputs=inputs)

    assert review_ops.get_review(app, item.item_id).status.value == "open"
    assert handle.status() is sf.RunStatus.NEEDS_REVIEW


def test_a_skip_value_that_does_not_fit_the_steps_result_is_refused_and_changes_nothing(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(422, body=VALIDATION))
    app = make_app()
    pay = single_charge(app, server.url)  # the step returns a JSON object
    start_worker(app)
    handle = app.start(pay, "o-1", -5)
    item = parked_review(app, handle.run_id)

    with pytest.raises(InvalidDecisionError):
        review_ops.decide(app, item.item_id, "skip", actor="reviewer", value=42)

    assert review_ops.get_review(app, item.item_id).status.value == "open"
    assert handle.status() is sf.RunStatus.NEEDS_REVIEW
