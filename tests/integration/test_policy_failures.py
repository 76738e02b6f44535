"""Policy failures park the run in the approval queue naming the rule; approving
resumes it past the rule, rejecting fails it."""

from __future__ import annotations

from typing import Any

import pytest

import surefoot as sf
from surefoot.ops import review as review_ops
from tests.integration.support.fault_server import FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.http import create
from tests.integration.support.probes import dead_letter, parked_review, step_attempts

POLICY = sf.FailureClass.POLICY
LIMIT = 1000


def _limited_payments(app: sf.App, base_url: str) -> Any:
    @app.step(name="charge")
    def charge(order_id: str, amount: int) -> dict[str, Any]:
        sf.require_approval(
            "amount-over-limit", when=amount > LIMIT, message=f"{amount} is over {LIMIT}"
        )
        return create(base_url, "payments", {"order_id": order_id, "amount": amount})

    @app.workflow(name="pay")
    def pay(ctx: sf.WorkflowContext, order_id: str, amount: int) -> dict[str, Any]:
        return charge(order_id, amount)

    return pay


def test_require_approval_parks_the_run_naming_the_rule(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    pay = _limited_payments(app, server.url)
    start_worker(app)

    handle = app.start(pay, "o-1", 5000)
    item = parked_review(app, handle.run_id)

    assert item.kind == "approval"
    assert item.actions == ("approve", "reject")
    assert "amount-over-limit" in item.title
    payload = review_ops.payload(item)
    assert payload["rule"] == "amount-over-limit"
    assert payload["inputs"] == {"order_id": "o-1", "amount": 5000}
    assert payload["message"] == f"5000 is over {LIMIT}"
    [attempt] = step_attempts(app, handle.run_id)
    assert (attempt.failure_class, attempt.rule, attempt.route) == (POLICY, "declared", "approval")
    assert server.posts("payments") == []  # blocked before the effect


def test_amount_under_the_limit_needs_no_approval(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    pay = _limited_payments(app, server.url)
    start_worker(app)

    handle = app.start(pay, "o-1", 10)
    handle.result(timeout=10)

    assert len(server.effects("payments")) == 1
    assert review_ops.list_reviews(app, None) == []


def test_approval_resumes_the_run_past_the_rule_and_completes(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    pay = _limited_payments(app, server.url)
    start_worker(app)
    handle = app.start(pay, "o-1", 5000)
    item = parked_review(app, handle.run_id)

    review_ops.decide(app, item.item_id, "approve", actor="approver")
    record = handle.result(timeout=10)

    [effect] = server.effects("payments")
    assert effect.effect_id == record["id"]
    assert effect.body == {"order_id": "o-1", "amount": 5000}
    assert [a.outcome for a in step_attempts(app, handle.run_id)] == [
        sf.AttemptOutcome.FAILED,
        sf.AttemptOutcome.SUCCEEDED,
    ]
    assert review_ops.list_reviews(app) == []  # approved once, not asked again


def test_rejection_fails_the_run_with_no_effect(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    pay = _limited_payments(app, server.url)
    start_worker(app)
    handle = app.start(pay, "o-1", 5000)
    item = parked_review(app, handle.run_id)

    review_ops.decide(app, item.item_id, "reject", actor="approver", comment="too large")

    with pytest.raises(sf.RunFailedError, match=r"\(policy\)"):
        handle.result(timeout=10)
    assert server.posts("payments") == []
    dead = dead_letter(app, handle.run_id)
    assert dead.failure_class is POLICY
    assert "reject by approver" in dead.reason


def test_policy_violation_raised_by_a_step_names_its_rule(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()

    @app.step(name="summarise")
    def summarise(document: str) -> str:
        raise sf.PolicyViolation("the AI budget for this run is spent", rule="ai-budget")

    @app.workflow(name="digest")
    def digest(ctx: sf.WorkflowContext, document: str) -> str:
        return summarise(document)

    start_worker(app)
    handle = app.start(digest, "doc-1")
    item = parked_review(app, handle.run_id)

    assert item.kind == "approval"
    assert review_ops.payload(item)["rule"] == "ai-budget"
    assert "ai-budget" in item.title

    review_ops.decide(app, item.item_id, "reject", actor="approver")
    with pytest.raises(sf.RunFailedError, match="policy"):
        handle.result(timeout=10)
