"""Durable waits: events are buffered and deduplicated, timeouts replay the same way, reviews
resume with the person's decision, and a waiting run holds no worker thread."""

from __future__ import annotations

import time
from typing import Any

import pytest

import surefoot as sf
from surefoot.ops import review


def wait_status(handle: sf.RunHandle, status: sf.RunStatus, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() is not status:
        assert time.monotonic() < deadline, f"run is {handle.status()}, expected {status}"
        time.sleep(0.01)


def test_event_sent_before_the_wait_is_buffered_and_delivered(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> Any:
        return ctx.wait_for("approved", timeout_s=30)

    handle = app.start(flow)
    app.send_event(handle.run_id, "approved", {"by": "approver-1"})
    start_worker(app)
    assert handle.result(timeout=10) == {"by": "approver-1"}


def test_buffered_events_are_delivered_one_per_wait_in_the_order_sent(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> list[Any]:
        return [ctx.wait_for("line") for _ in range(3)]

    handle = app.start(flow)
    for n in (1, 2, 3):
        app.send_event(handle.run_id, "line", n)
    app.send_event(handle.run_id, "other", "ignored")
    start_worker(app)
    assert handle.result(timeout=10) == [1, 2, 3]


def test_event_can_be_addressed_by_the_runs_idempotency_key(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> Any:
        return ctx.wait_for("paid")

    handle = app.start(flow, idempotency_key="INV-9")
    start_worker(app)
    wait_status(handle, sf.RunStatus.WAITING)
    app.send_event("INV-9", "paid", 120)
    assert handle.result(timeout=10) == 120


def test_wait_timeout_raises_and_replays_as_a_timeout_even_if_the_event_comes_later(
    make_app, start_worker
):
    app: sf.App = make_app()
    outcomes: list[str] = []

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> str:
        try:
            ctx.wait_for("go", timeout_s=0.05)
            outcome = "event"
        except sf.WaitTimeoutError:
            outcome = "timeout"
        outcomes.append(outcome)
        ctx.wait_for("finish")
        return outcome

    start_worker(app)
    handle = app.start(flow)
    deadline = time.monotonic() + 10
    while not (handle.status() is sf.RunStatus.WAITING and outcomes):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    app.send_event(handle.run_id, "go", "too late")
    app.send_event(handle.run_id, "finish")
    assert handle.result(timeout=10) == "timeout"
    assert outcomes == ["timeout", "timeout"]


def test_uncaught_wait_timeout_fails_the_run_naming_the_event(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> Any:
        return ctx.wait_for("never", timeout_s=0.05)

    start_worker(app)
    with pytest.raises(sf.RunFailedError, match=r"WaitTimeoutError.*'never'"):
        app.start(flow).result(timeout=10)


def test_repeated_event_key_is_stored_once(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> list[Any]:
        first = ctx.wait_for("paid")
        try:
            second = ctx.wait_for("paid", timeout_s=0.1)
        except sf.WaitTimeoutError:
            second = None
        return [first, second]

    handle = app.start(flow)
    app.send_event(handle.run_id, "paid", {"amount": 1}, event_key="evt-1")
    app.send_event(handle.run_id, "paid", {"amount": 1}, event_key="evt-1")
    app.send_event(handle.run_id, "paid", {"amount": 2}, event_key="evt-1")
    start_worker(app)
    assert handle.result(timeout=10) == [{"amount": 1}, None]


def test_repeated_event_key_after_the_run_finished_is_still_acknowledged(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> Any:
        return ctx.wait_for("paid")

    handle = app.start(flow)
    app.send_event(handle.run_id, "paid", 5, event_key="evt-1")
    start_worker(app)
    assert handle.result(timeout=10) == 5
    app.send_event(handle.run_id, "paid", 5, event_key="evt-1")
    with pytest.raises(sf.errors.RunAlreadyFinishedError):
        app.send_event(handle.run_id, "paid", 5, event_key="evt-2")


def test_review_returns_the_decision_recorded_by_ops(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext, amount: int) -> dict[str, Any]:
        decision = ctx.review(
            "approve-payment",
            payload={"amount": amount},
            actions=["approve", "reject"],
            title="Approve the payment",
            assignee_role="finance",
            priority=5,
        )
        return {
            "action": decision.action,
            "value": decision.value,
            "by": decision.decided_by,
            "comment": decision.comment,
            "item_id": decision.item_id,
        }

    start_worker(app)
    handle = app.start(flow, 7200)
    wait_status(handle, sf.RunStatus.NEEDS_REVIEW)
    (item,) = review.list_reviews(app)
    assert (item.kind, item.title, item.actions) == (
        "approve-payment",
        "Approve the payment",
        ("approve", "reject"),
    )
    assert (item.assignee_role, item.priority, item.run_id) == ("finance", 5, handle.run_id)
    assert review.payload(item) == {"amount": 7200}
    review.decide(
        app, item.item_id, "approve", actor="approver-1", value={"limit": 8000}, comment="ok"
    )
    assert handle.result(timeout=10) == {
        "action": "approve",
        "value": {"limit": 8000},
        "by": "approver-1",
        "comment": "ok",
        "item_id": item.item_id,
    }
    assert review.get_review(app, item.item_id).status.value == "decided"


def test_review_decision_replays_the_same_after_a_later_wait(make_app, start_worker):
    app: sf.App = make_app()
    seen: list[str] = []

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> str:
        decision = ctx.review("check", actions=["approve", "reject"])
        seen.append(decision.action)
        ctx.sleep(0.05)
        return decision.action

    start_worker(app)
    handle = app.start(flow)
    wait_status(handle, sf.RunStatus.NEEDS_REVIEW)
    (item,) = review.list_reviews(app)
    review.decide(app, item.item_id, "reject", actor="approver-2")
    assert handle.result(timeout=10) == "reject"
    assert seen == ["reject", "reject"]


def test_waiting_for_an_event_holds_no_worker_thread(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def waiter(ctx: sf.WorkflowContext) -> Any:
        return ctx.wait_for("go")

    @app.workflow
    def quick(ctx: sf.WorkflowContext, n: int) -> int:
        return n * 2

    start_worker(app, concurrency=1)
    waiting = app.start(waiter)
    wait_status(waiting, sf.RunStatus.WAITING)
    others = [app.start(quick, n) for n in range(3)]
    assert [h.result(timeout=10) for h in others] == [0, 2, 4]
    assert waiting.status() is sf.RunStatus.WAITING
    app.send_event(waiting.run_id, "go", "now")
    assert waiting.result(timeout=10) == "now"


def test_durable_sleep_holds_no_worker_thread(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def sleeper(ctx: sf.WorkflowContext) -> str:
        ctx.sleep(60.0)
        return "rested"

    @app.workflow
    def quick(ctx: sf.WorkflowContext) -> str:
        return "done"

    start_worker(app, concurrency=1)
    sleeping = app.start(sleeper)
    wait_status(sleeping, sf.RunStatus.WAITING)
    assert app.start(quick).result(timeout=10) == "done"
    assert sleeping.status() is sf.RunStatus.WAITING
    assert sleeping.record().lease_owner is None
