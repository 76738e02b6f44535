"""Routes and classifier rules are data that apps, workflows and steps override: the
``raise`` route hands the failure to workflow code, user rules beat the defaults, the
most specific scope wins, and the attempt records the rule that chose the class."""

from __future__ import annotations

from typing import Any

import pytest

import surefoot as sf
from surefoot.ops import review as review_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import single_charge
from tests.integration.support.http import create
from tests.integration.support.probes import dead_letter, parked_review, step_attempts

TRANSIENT = sf.FailureClass.TRANSIENT
PERMANENT = sf.FailureClass.PERMANENT
DATA = sf.FailureClass.DATA


class LedgerBusyError(Exception):
    """A client library's own error that the defaults do not know."""


def test_raise_route_delivers_step_failed_error_that_workflow_code_can_catch(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(400))
    app = make_app()

    @app.step(name="charge", routes={"permanent": "raise"})
    def charge(order_id: str) -> dict[str, Any]:
        return create(server.url, "payments", {"order_id": order_id})

    @app.workflow(name="pay")
    def pay(ctx: sf.WorkflowContext, order_id: str) -> dict[str, Any]:
        try:
            charge(order_id)
        except sf.StepFailedError as exc:
            # A durable sleep makes the run replay this catch from the store.
            ctx.sleep(0.05)
            return {"declined": True, "step": exc.step, "class": exc.failure_class}
        return {"declined": False}

    start_worker(app)
    handle = app.start(pay, "o-1")

    assert handle.result(timeout=10) == {
        "declined": True,
        "step": "charge",
        "class": "permanent",
    }
    assert len(server.posts("payments")) == 1  # the replay re-raised, it did not re-send
    [attempt] = step_attempts(app, handle.run_id)
    assert (attempt.failure_class, attempt.rule, attempt.route) == (PERMANENT, "http:4xx", "raise")
    assert app.store.get_dead_letter(handle.run_id) is None


def test_uncaught_step_failed_error_fails_the_run_with_the_steps_class(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(400))
    app = make_app()
    pay = single_charge(app, server.url, routes={"permanent": "raise"})
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    with pytest.raises(sf.RunFailedError, match=r"\(permanent\)"):
        handle.result(timeout=10)
    assert dead_letter(app, handle.run_id).failure_class is PERMANENT


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ((), [(PERMANENT, "http:other-4xx")]),
        (
            (sf.on_status("teapot-busy", [418], TRANSIENT),),
            [(TRANSIENT, "teapot-busy"), (None, None)],
        ),
    ],
    ids=["default", "app-rule"],
)
def test_app_status_rule_overrides_the_default_class(
    server: FaultServer,
    make_app: MakeApp,
    start_worker: StartWorker,
    rules: tuple[sf.Rule, ...],
    expected: list[Any],
):
    server.fail_next("payments", Fault.http(418))
    app = make_app(classify=rules)
    pay = single_charge(app, server.url, retry=sf.Retry(max_attempts=3))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    try:
        handle.result(timeout=10)
    except sf.RunFailedError:
        assert not rules  # only the default makes 418 permanent

    attempts = step_attempts(app, handle.run_id)
    assert [(a.failure_class, a.rule) for a in attempts] == expected


def test_step_body_rule_turns_a_400_into_a_data_review(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(400, body={"code": "insufficient_funds"}))
    app = make_app()
    funds = sf.on_body("insufficient-funds", r"insufficient_funds", DATA)
    pay = single_charge(app, server.url, classify=[funds])
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    item = parked_review(app, handle.run_id)

    assert item.kind == "data"
    assert review_ops.payload(item)["rule"] == "insufficient-funds"
    [attempt] = step_attempts(app, handle.run_id)
    assert (attempt.failure_class, attempt.rule, attempt.route) == (
        DATA,
        "insufficient-funds",
        "review",
    )


def test_workflow_exception_rule_makes_an_unknown_error_transient(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()

    @app.step(name="post", retry=sf.Retry(max_attempts=3))
    def post(entry: str) -> dict[str, Any]:
        if sf.current_step().attempt == 1:
            raise LedgerBusyError("ledger is busy, try later")
        return create(server.url, "entries", {"entry": entry})

    busy = sf.on_exception("ledger-busy", [LedgerBusyError], TRANSIENT)

    @app.workflow(name="book", classify=[busy])
    def book(ctx: sf.WorkflowContext, entry: str) -> dict[str, Any]:
        return post(entry)

    start_worker(app)
    handle = app.start(book, "e-1")
    handle.result(timeout=10)

    first, second = step_attempts(app, handle.run_id)
    assert (first.failure_class, first.rule) == (TRANSIENT, "ledger-busy")
    assert second.outcome is sf.AttemptOutcome.SUCCEEDED
    assert len(server.effects("entries")) == 1


def test_unknown_exception_without_a_rule_is_permanent_and_not_retried(
    make_app: MakeApp, start_worker: StartWorker
):
    app = make_app()
    calls: list[int] = []

    @app.step(name="post", retry=sf.Retry(max_attempts=3))
    def post(entry: str) -> str:
        calls.append(sf.current_step().attempt)
        raise LedgerBusyError("ledger is busy, try later")

    @app.workflow(name="book")
    def book(ctx: sf.WorkflowContext, entry: str) -> str:
        return post(entry)

    start_worker(app)
    handle = app.start(book, "e-1")
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)

    assert calls == [1]
    [attempt] = step_attempts(app, handle.run_id)
    assert (attempt.failure_class, attempt.rule) == (PERMANENT, "default:unknown")


def test_step_rules_beat_workflow_rules_which_beat_app_rules(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("holds", Fault.http(409))
    server.fail_next("payments", Fault.http(409))
    app = make_app(classify=[sf.on_status("app-409", [409], PERMANENT)])

    @app.step(name="hold")
    def hold(order_id: str) -> dict[str, Any]:
        return create(server.url, "holds", {"order_id": order_id})

    @app.step(name="charge", classify=[sf.on_status("step-409", [409], DATA)])
    def charge(order_id: str) -> dict[str, Any]:
        return create(server.url, "payments", {"order_id": order_id})

    @app.workflow(name="pay", classify=[sf.on_status("workflow-409", [409], TRANSIENT)])
    def pay(ctx: sf.WorkflowContext, order_id: str) -> dict[str, Any]:
        hold(order_id)
        return charge(order_id)

    start_worker(app)
    handle = app.start(pay, "o-1")
    parked_review(app, handle.run_id)

    assert [(a.step, a.failure_class, a.rule) for a in step_attempts(app, handle.run_id)] == [
        ("hold", TRANSIENT, "workflow-409"),  # the workflow's rule beat the app's
        ("hold", None, None),
        ("charge", DATA, "step-409"),  # the step's rule beat both
    ]


def test_app_route_override_sends_transient_failures_straight_to_review(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(503))
    app = make_app(routes={"transient": "review"})
    pay = single_charge(app, server.url, retry=sf.Retry(max_attempts=5))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    item = parked_review(app, handle.run_id)

    assert len(server.posts("payments")) == 1
    [attempt] = step_attempts(app, handle.run_id)
    assert (attempt.failure_class, attempt.route) == (TRANSIENT, "review")
    assert item.actions  # a person decides what happens next
