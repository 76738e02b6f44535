"""Ambiguous failures (a POST that may have committed, then timed out) are never re-sent
blind: the reconcile hook looks the effect up by idempotency key, an absent effect is
retried once, an unknowable one goes to a person. Idempotent steps are simply retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import surefoot as sf
from surefoot.errors import InvalidDecisionError
from surefoot.ops import review as review_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.http import SHORT_TIMEOUT_S, closed_port_url, create, lookup
from tests.integration.support.probes import dead_letter, parked_review, step_attempts

AMBIGUOUS = sf.FailureClass.AMBIGUOUS
HANG_S = 5.0  # far longer than the client's timeout; the fixture wakes it at teardown

Reconcile = Callable[[sf.StepContext, str], Any]


def _payments(app: sf.App, server: FaultServer, **options: Any) -> Any:
    """``pay(order_id, amount)``: one charge step whose client times out quickly."""

    @app.step(name="charge", **options)
    def charge(order_id: str, amount: int) -> dict[str, Any]:
        body = {"order_id": order_id, "amount": amount}
        return create(server.url, "payments", body, timeout_s=SHORT_TIMEOUT_S)

    @app.workflow(name="pay")
    def pay(ctx: sf.WorkflowContext, order_id: str, amount: int) -> dict[str, Any]:
        return charge(order_id, amount)

    return pay


def _lookup_hook(server: FaultServer, seen: list[str]) -> Reconcile:
    def find_payment(step: sf.StepContext, key: str) -> sf.Found | sf.NotFound:
        seen.append(key)
        record = lookup(server.url, "payments", key)
        return sf.Found(record) if record is not None else sf.NotFound()

    return find_payment


def test_committed_then_timed_out_post_is_reconciled_with_exactly_one_payment(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.hang_after_commit(HANG_S))
    seen: list[str] = []
    app = make_app()
    pay = _payments(app, server, reconcile=_lookup_hook(server, seen))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    record = handle.result(timeout=10)

    key = f"{handle.run_id}:1"
    [payment] = server.effects("payments")
    assert record["id"] == payment.effect_id
    assert [r.key for r in server.posts("payments")] == [key]  # never re-sent
    assert seen == [key]  # the hook looked it up by the step's idempotency key
    [attempt] = step_attempts(app, handle.run_id)
    assert (attempt.outcome, attempt.failure_class, attempt.rule) == (
        sf.AttemptOutcome.RECONCILED,
        AMBIGUOUS,
        "timeout:after-send",
    )


def test_effect_not_found_is_retried_once_and_completes_with_one_payment(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.hang_before_processing(HANG_S))
    seen: list[str] = []
    app = make_app()
    pay = _payments(app, server, reconcile=_lookup_hook(server, seen))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    record = handle.result(timeout=10)

    assert [e.effect_id for e in server.effects("payments")] == [record["id"]]
    assert [r.outcome for r in server.posts("payments")] == ["hung-before", "committed"]
    assert len(seen) == 1
    first, second = step_attempts(app, handle.run_id)
    assert first.failure_class is AMBIGUOUS
    assert first.decision is not None
    assert "not found" in first.decision
    assert second.outcome is sf.AttemptOutcome.SUCCEEDED


def test_effect_still_not_found_after_the_one_retry_goes_to_a_person(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next(
        "payments", Fault.hang_before_processing(HANG_S), Fault.hang_before_processing(HANG_S)
    )
    seen: list[str] = []
    app = make_app()
    pay = _payments(app, server, reconcile=_lookup_hook(server, seen))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    item = parked_review(app, handle.run_id)

    assert item.kind == "ambiguous"
    assert len(server.posts("payments")) == 2  # the first and its one safe retry
    assert server.effects() == []


def _cannot_tell(step: sf.StepContext, key: str) -> sf.CannotTell:
    return sf.CannotTell("the ledger's search API is down")


def _lookup_that_fails(step: sf.StepContext, key: str) -> sf.Found | sf.NotFound:
    record = lookup(closed_port_url(), "payments", key)  # the ledger's API is unreachable
    return sf.Found(record) if record is not None else sf.NotFound()


@pytest.mark.parametrize(
    "hook",
    [_cannot_tell, _lookup_that_fails, None],
    ids=["cannot-tell", "hook-fails", "no-hook"],
)
def test_unknowable_outcome_goes_to_review_and_happened_completes_without_a_second_post(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker, hook: Reconcile | None
):
    server.fail_next("payments", Fault.hang_after_commit(HANG_S))
    app = make_app()
    pay = _payments(app, server, reconcile=hook, retry=sf.Retry(max_attempts=5))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    item = parked_review(app, handle.run_id)

    assert item.kind == "ambiguous"
    assert item.actions == ("happened", "retry", "abort")
    payload = review_ops.payload(item)
    assert payload["step"] == "charge"
    assert payload["inputs"] == {"order_id": "o-1", "amount": 100}
    [attempt] = step_attempts(app, handle.run_id)
    assert attempt.failure_class is AMBIGUOUS
    assert attempt.route == "review"
    assert "asking a person" in (attempt.decision or "")

    [payment] = server.effects("payments")  # what a person finds in the ledger
    found = {"id": payment.effect_id, "key": payment.key, "body": payment.body}
    review_ops.decide(app, item.item_id, "happened", actor="reviewer", value=found)

    assert handle.result(timeout=10) == found
    assert len(server.posts("payments")) == 1
    assert len(server.effects("payments")) == 1


def test_reviewer_retry_of_an_ambiguous_step_sends_it_again(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.hang_before_processing(HANG_S))
    app = make_app()
    pay = _payments(app, server)
    start_worker(app)
    handle = app.start(pay, "o-1", 100)
    item = parked_review(app, handle.run_id)
    assert server.effects() == []  # a person checks: nothing happened

    review_ops.decide(app, item.item_id, "retry", actor="reviewer")
    record = handle.result(timeout=10)

    assert [e.effect_id for e in server.effects("payments")] == [record["id"]]
    assert len(server.posts("payments")) == 2


def test_reviewer_abort_of_an_ambiguous_step_fails_the_run_as_ambiguous(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.hang_after_commit(HANG_S))
    app = make_app()
    pay = _payments(app, server)
    start_worker(app)
    handle = app.start(pay, "o-1", 100)
    item = parked_review(app, handle.run_id)

    review_ops.decide(app, item.item_id, "abort", actor="reviewer")

    with pytest.raises(sf.RunFailedError, match=r"\(ambiguous\)"):
        handle.result(timeout=10)
    assert dead_letter(app, handle.run_id).failure_class is AMBIGUOUS
    assert len(server.posts("payments")) == 1


def test_idempotent_step_hitting_a_read_timeout_is_simply_retried(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.dedupe("payments")  # the API honours idempotency keys, so a re-send is safe
    server.fail_next("payments", Fault.hang_after_commit(HANG_S))
    reconciled: list[str] = []
    app = make_app()
    pay = _payments(app, server, idempotent=True, reconcile=_lookup_hook(server, reconciled))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    record = handle.result(timeout=10)

    assert [e.effect_id for e in server.effects("payments")] == [record["id"]]
    assert [r.outcome for r in server.posts("payments")] == ["committed-then-hung", "replayed"]
    assert reconciled == []  # no lookup needed
    first, second = step_attempts(app, handle.run_id)
    assert (first.failure_class, first.rule, first.route) == (
        sf.FailureClass.TRANSIENT,
        "timeout:after-send",
        "retry",
    )
    assert second.outcome is sf.AttemptOutcome.SUCCEEDED


def test_a_happened_value_that_does_not_fit_the_steps_result_is_refused_and_changes_nothing(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.hang_after_commit(HANG_S))
    app = make_app()
    pay = _payments(app, server)  # the step returns a JSON object
    start_worker(app)
    handle = app.start(pay, "o-1", 100)
    item = parked_review(app, handle.run_id)

    with pytest.raises(InvalidDecisionError):
        review_ops.decide(app, item.item_id, "happened", actor="reviewer", value="yes")

    assert review_ops.get_review(app, item.item_id).status.value == "open"
    assert handle.status() is sf.RunStatus.NEEDS_REVIEW
