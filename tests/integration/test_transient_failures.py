"""Transient failures (502/503/504, 429, refused connections) are retried with one key,
honour Retry-After, and end in the dead-letter queue with a reason when exhausted."""

from __future__ import annotations

import math
import time
from email.utils import formatdate
from typing import Any

import pytest

import surefoot as sf
from surefoot.domain.records import DeadLetterFilter
from surefoot.ops import dead_letter as dead_letter_ops
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import single_charge
from tests.integration.support.http import closed_port_url, create
from tests.integration.support.probes import dead_letter, step_attempts

FAILED = sf.AttemptOutcome.FAILED
SUCCEEDED = sf.AttemptOutcome.SUCCEEDED
TRANSIENT = sf.FailureClass.TRANSIENT


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_5xx_is_retried_until_success_with_one_effect(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker, status: int
):
    server.fail_next("payments", Fault.http(status), Fault.http(status))
    app = make_app()
    pay = single_charge(app, server.url, retry=sf.Retry(max_attempts=5))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    record = handle.result(timeout=10)

    assert [e.effect_id for e in server.effects("payments")] == [record["id"]]
    attempts = step_attempts(app, handle.run_id)
    assert [a.outcome for a in attempts] == [FAILED, FAILED, SUCCEEDED]
    assert [(a.failure_class, a.rule, a.route) for a in attempts[:2]] == [
        (TRANSIENT, "http:502-504", "retry")
    ] * 2
    # Every attempt carried the same idempotency key, and the server saw it each time.
    key = f"{handle.run_id}:1"
    assert {a.idempotency_key for a in attempts} == {key}
    assert [r.key for r in server.posts("payments")] == [key] * 3


def test_429_with_retry_after_is_retried_until_success_with_one_effect(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", *[Fault.http(429, retry_after=1)] * 3)
    app = make_app()
    pay = single_charge(app, server.url, retry=sf.Retry(max_attempts=4))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    record = handle.result(timeout=10)

    assert [e.effect_id for e in server.effects("payments")] == [record["id"]]
    attempts = step_attempts(app, handle.run_id)
    assert [(a.outcome, a.failure_class, a.rule) for a in attempts] == [
        (FAILED, TRANSIENT, "http:429"),
        (FAILED, TRANSIENT, "http:429"),
        (FAILED, TRANSIENT, "http:429"),
        (SUCCEEDED, None, None),
    ]


def test_transient_exhaustion_fails_the_run_into_dead_letter_with_a_reason(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    pay = single_charge(app, server.url, retry=sf.Retry(max_attempts=3))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    with pytest.raises(sf.RunFailedError, match=r"\(transient\)"):
        handle.result(timeout=10)

    assert len(server.posts("payments")) == 3  # max_attempts counts every attempt
    assert server.effects() == []
    assert handle.status() is sf.RunStatus.FAILED
    dead = dead_letter(app, handle.run_id)
    assert dead.failure_class is TRANSIENT
    assert dead.attempts == 3
    assert (dead.step, dead.position) == ("charge", 1)
    assert "gave up after 3 attempts" in dead.reason
    assert dead.last_error is not None
    assert "503" in dead.last_error
    assert not dead.compensated
    listed = dead_letter_ops.list_dead_letters(app, DeadLetterFilter(failure_class=TRANSIENT))
    assert [d.run_id for d in listed] == [handle.run_id]
    assert [a.rule for a in step_attempts(app, handle.run_id)] == ["http:502-504"] * 3


def test_refused_connection_is_transient_and_retried(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    refused = closed_port_url()
    app = make_app()

    @app.step(name="charge", retry=sf.Retry(max_attempts=5))
    def charge(order_id: str) -> dict[str, Any]:
        # The first two attempts find nothing listening; the third reaches the server.
        base = refused if sf.current_step().attempt < 3 else server.url
        return create(base, "payments", {"order_id": order_id})

    @app.workflow(name="pay")
    def pay(ctx: sf.WorkflowContext, order_id: str) -> dict[str, Any]:
        return charge(order_id)

    start_worker(app)
    handle = app.start(pay, "o-1")
    record = handle.result(timeout=10)

    assert [e.effect_id for e in server.effects()] == [record["id"]]
    attempts = step_attempts(app, handle.run_id)
    assert [(a.failure_class, a.rule) for a in attempts] == [
        (TRANSIENT, "network:connect"),
        (TRANSIENT, "network:connect"),
        (None, None),
    ]


def test_refused_connection_exhausts_into_dead_letter_as_transient(
    make_app: MakeApp, start_worker: StartWorker
):
    refused = closed_port_url()
    app = make_app()
    pay = single_charge(app, refused, retry=sf.Retry(max_attempts=2))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)

    dead = dead_letter(app, handle.run_id)
    assert dead.failure_class is TRANSIENT
    assert dead.attempts == 2
    assert "ConnectError" in dead.reason


def _http_date_at_least(seconds: int) -> str:
    """An HTTP date at least ``seconds`` away (HTTP dates have whole-second resolution)."""
    return formatdate(math.ceil(time.time()) + seconds, usegmt=True)


@pytest.mark.parametrize(
    "retry_after", [lambda: "1", lambda: _http_date_at_least(2)], ids=["delta-seconds", "http-date"]
)
def test_retry_after_is_honoured_before_the_next_attempt(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker, retry_after: Any
):
    server.fail_next("payments", Fault.http(429, retry_after=retry_after()))
    app = make_app(instant_retries=False)
    # Backoff alone would retry within 50 ms; only Retry-After can hold it back.
    policy = sf.Retry(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05)
    pay = single_charge(app, server.url, retry=policy)
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    handle.result(timeout=10)

    first, second = step_attempts(app, handle.run_id)
    assert first.rule == "http:429"
    assert (second.started_at - first.started_at).total_seconds() >= 1.0
    posts = server.posts("payments")
    assert [r.outcome for r in posts] == ["429", "committed"]
    assert posts[1].at - posts[0].at >= 0.95  # the server's clock agrees


def test_without_retry_after_the_short_backoff_retries_promptly(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    """Control for the Retry-After test: the same policy without the header is fast."""
    server.fail_next("payments", Fault.http(429))
    app = make_app(instant_retries=False)
    policy = sf.Retry(max_attempts=3, initial_delay_s=0.01, max_delay_s=0.05)
    pay = single_charge(app, server.url, retry=policy)
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    handle.result(timeout=10)

    first, second = step_attempts(app, handle.run_id)
    assert (second.started_at - first.started_at).total_seconds() < 0.9


def test_a_retry_after_past_the_deadline_dead_letters_at_once(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker
):
    server.fail_next("payments", Fault.http(503, retry_after=30))
    app = make_app(instant_retries=False)
    pay = single_charge(app, server.url, retry=sf.Retry(max_attempts=5, deadline_s=2))
    start_worker(app)

    handle = app.start(pay, "o-1", 100)
    with pytest.raises(sf.RunFailedError, match="deadline"):
        handle.result(timeout=5)  # it did not wait 30 s to find out

    assert len(server.posts("payments")) == 1
    dead = dead_letter(app, handle.run_id)
    assert dead.failure_class is TRANSIENT
    assert "2s deadline" in dead.reason
