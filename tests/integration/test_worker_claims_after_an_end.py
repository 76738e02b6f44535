"""When a run's execution ends, its worker looks for work again at once only if that end
may have made a run claimable: the run did not end (it waits, perhaps due at once), the
worker was full, or the run held a partition key or a slot of a limited queue. A run that
simply ended frees nothing a claim could use, so the worker does not spend a write on an
empty claim; new runs wake it themselves.

The worker here polls only every 60 s, so anything that completes within the tests'
timeouts was claimed because something woke the worker. The negative control wakes the
worker after every end, as before, and the claim count catches it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

import surefoot as sf
from surefoot.engine.worker import Worker

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]

POLL_S = 60.0  # longer than any test here: only wake-ups make the worker claim
TIMEOUT_S = 10.0


def _claims() -> float:
    return (
        REGISTRY.get_sample_value("surefoot_store_latency_seconds_count", {"operation": "claim"})
        or 0.0
    )


def _one_step_app(make_app: MakeApp, name: str) -> tuple[sf.App, Callable[..., int]]:
    app = make_app(name, poll_interval_s=POLL_S)

    @app.step(name=f"{name}.double", idempotent=True)
    def double(n: int) -> int:
        return n * 2

    @app.workflow(name=f"{name}.flow")
    def flow(_ctx: sf.WorkflowContext, n: int) -> int:
        return double(n)

    return app, flow


def _claims_for_runs_one_at_a_time(make_app: MakeApp, start_worker: StartWorker) -> float:
    app, flow = _one_step_app(make_app, "single")
    start_worker(app, concurrency=4)
    assert app.start(flow, 0).result(timeout=TIMEOUT_S) == 0  # the worker is up
    before = _claims()
    for n in range(5):
        assert app.start(flow, n).result(timeout=TIMEOUT_S) == n * 2
    return _claims() - before


def test_a_run_that_simply_ends_does_not_make_its_worker_claim_again(
    make_app: MakeApp, start_worker: StartWorker
):
    # One claim per run: the one its start woke the worker for.
    assert _claims_for_runs_one_at_a_time(make_app, start_worker) == 5


@pytest.fixture
def worker_that_claims_after_every_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broken variant: every end counts as freeing a slot."""
    monkeypatch.setattr(Worker, "_frees_a_slot", lambda _self, _run: True)


@pytest.mark.usefixtures("worker_that_claims_after_every_end")
def test_claim_count_catches_a_worker_that_claims_after_every_end(
    make_app: MakeApp, start_worker: StartWorker
):
    # At least one more claim per run than needed (an end may meet the next start's wake).
    assert _claims_for_runs_one_at_a_time(make_app, start_worker) > 5


def _held_app(make_app: MakeApp, name: str) -> tuple[sf.App, Callable[..., int], threading.Event]:
    """A workflow whose first run blocks in its step until the test lets it go."""
    app = make_app(name, poll_interval_s=POLL_S)
    release = threading.Event()

    @app.step(name=f"{name}.hold", idempotent=True)
    def hold(n: int) -> int:
        if n == 1:
            assert release.wait(TIMEOUT_S)
        return n

    @app.workflow(name=f"{name}.flow")
    def flow(_ctx: sf.WorkflowContext, n: int) -> int:
        return hold(n)

    return app, flow, release


def _second_waits_for_the_first(
    app: sf.App,
    flow: Callable[..., int],
    release: threading.Event,
    *,
    queue: str | None = None,
    partition_key: str | None = None,
) -> None:
    """The first run holds what the second needs; once it ends, the second must run
    without waiting for the poll."""
    first = app.start(flow, 1, queue=queue, partition_key=partition_key)
    deadline = time.monotonic() + TIMEOUT_S
    while first.status() is not sf.RunStatus.RUNNING:
        assert time.monotonic() < deadline, "the first run was never claimed"
        time.sleep(0.01)
    second = app.start(flow, 2, queue=queue, partition_key=partition_key)
    time.sleep(0.2)  # the worker has had every chance to claim the second run
    assert second.status() is sf.RunStatus.PENDING
    release.set()
    assert first.result(timeout=TIMEOUT_S) == 1
    # Claimed because the first run's end woke the worker: its poll is a minute away.
    assert second.result(timeout=TIMEOUT_S) == 2


def test_an_end_that_frees_a_partition_key_is_claimed_at_once(
    make_app: MakeApp, start_worker: StartWorker
):
    app, flow, release = _held_app(make_app, "partition")
    start_worker(app, concurrency=4)
    _second_waits_for_the_first(app, flow, release, partition_key="customer-1")


def test_an_end_that_frees_a_slot_of_a_limited_queue_is_claimed_at_once(
    make_app: MakeApp, start_worker: StartWorker
):
    app, flow, release = _held_app(make_app, "limited")
    app.queue("one-at-a-time", concurrency=1)
    start_worker(app, concurrency=4)
    _second_waits_for_the_first(app, flow, release, queue="one-at-a-time")


def test_an_end_in_a_full_worker_is_claimed_at_once(make_app: MakeApp, start_worker: StartWorker):
    app, flow, release = _held_app(make_app, "full")
    start_worker(app, concurrency=1)
    _second_waits_for_the_first(app, flow, release)


def test_an_execution_that_leaves_its_run_waiting_makes_the_worker_look_again_at_once(
    make_app: MakeApp, start_worker: StartWorker
):
    # A run that suspends may be due at once (an event already sent, a decision already
    # made); the worker claims again rather than leave it to the poll. Here the sleep is
    # long, so that claim finds nothing: it is counted, not seen.
    app = make_app("waits", poll_interval_s=POLL_S)

    @app.workflow(name="waits.flow")
    def flow(ctx: sf.WorkflowContext, n: int) -> int:
        if n:
            ctx.sleep(3600)
        return n

    start_worker(app, concurrency=4)
    assert app.start(flow, 0).result(timeout=TIMEOUT_S) == 0  # the worker is up
    before = _claims()
    handle = app.start(flow, 1)
    deadline = time.monotonic() + TIMEOUT_S
    while handle.status() is not sf.RunStatus.WAITING:
        assert time.monotonic() < deadline, "the run never reached its sleep"
        time.sleep(0.01)
    while _claims() - before < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    # The start's claim, then at least one more after the sleep began (a worker that left
    # the run to the poll claims once: checked by hand against such a variant).
    assert _claims() - before >= 2
