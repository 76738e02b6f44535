"""A step's result is committed before anything that may depend on it runs.

The engine leaves a successful step's end pending for a moment: it is committed at the
next step boundary (before the next step's body, or its start, or a wait), or, when the
workflow returns right after the step, in the same transaction as the run's end. These
tests look from outside the worker, through a store of their own, from inside each step
body: every earlier step must already be committed there. The negative control runs an
engine that skips the commit at the step boundary, and the same check must catch it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import surefoot as sf
from surefoot.domain.status import AttemptOutcome, RunStatus
from surefoot.engine.execution import ExecutionBase
from tests import postgres_support

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]
Seen = dict[int, list[int]]  # step position -> positions committed when its body ran


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'surefoot.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def declare(app: sf.App, observer: sf.App, seen: Seen) -> Callable[..., Any]:
    """Four steps: idempotent ones (nothing is written before their bodies), one whose
    start is written first, and a durable wait between them. Each body notes which
    positions the store shows committed when it runs."""

    def note() -> None:
        step = sf.current_step()
        seen[step.position] = [e.position for e in observer.store.list_journal(step.run_id)]

    @app.step(name="order.reserve", idempotent=True)
    def reserve(n: int) -> int:
        note()
        return n + 1

    @app.step(name="order.price", idempotent=True)
    def price(n: int) -> int:
        note()
        return n * 2

    @app.step(name="order.charge")
    def charge(n: int) -> int:
        note()
        return n + 3

    @app.step(name="order.confirm", idempotent=True)
    def confirm(n: int) -> int:
        note()
        return n * 10

    @app.workflow(name="order.flow")
    def flow(ctx: sf.WorkflowContext, n: int) -> int:
        value = charge(price(reserve(n)))
        ctx.sleep(0.01)
        return confirm(value)

    return flow


def run_once(make_app: MakeApp, start_worker: StartWorker) -> tuple[sf.App, str, Seen]:
    seen: Seen = {}
    app = make_app("order")
    flow = declare(app, make_app("observer"), seen)
    start_worker(app)
    handle = app.start(flow, 1)
    assert handle.result(timeout=20) == ((1 + 1) * 2 + 3) * 10
    return app, handle.run_id, seen


def test_each_step_runs_only_after_every_earlier_steps_result_is_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    app, run_id, seen = run_once(make_app, start_worker)

    # Position 4 is the durable wait; its step is at 5.
    assert seen == {1: [], 2: [1], 3: [1, 2], 5: [1, 2, 3, 4]}
    run = app.store.get_run(run_id)
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    assert [e.position for e in app.store.list_journal(run_id)] == [1, 2, 3, 4, 5]
    attempts = app.store.list_attempts(run_id)
    assert [(a.position, a.outcome) for a in attempts] == [
        (p, AttemptOutcome.SUCCEEDED) for p in (1, 2, 3, 5)
    ]


def test_async_steps_run_only_after_every_earlier_steps_result_is_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    seen: Seen = {}
    app, observer = make_app("async-order"), make_app("async-observer")

    @app.step(name="async.fetch", idempotent=True)
    async def fetch(n: int) -> int:
        step = sf.current_step()
        journal = observer.store.list_journal(step.run_id)
        seen[step.position] = [e.position for e in journal]
        await asyncio.sleep(0)
        return n + 1

    @app.workflow(name="async.flow")
    async def flow(_ctx: sf.WorkflowContext, n: int) -> int:
        return await fetch(await fetch(await fetch(n)))

    start_worker(app)
    handle = app.start(flow, 1)
    assert handle.result(timeout=20) == 4
    assert seen == {1: [], 2: [1], 3: [1, 2]}
    assert [e.position for e in app.store.list_journal(handle.run_id)] == [1, 2, 3]


def _execution_writes() -> float:
    return (
        REGISTRY.get_sample_value(
            "surefoot_store_latency_seconds_count", {"operation": "execution"}
        )
        or 0.0
    )


def test_the_last_steps_result_is_committed_with_the_run_end_in_one_write(
    make_app: MakeApp, start_worker: StartWorker
):
    app = make_app("three")

    @app.step(name="three.noop", idempotent=True)
    def noop(n: int) -> int:
        return n

    @app.workflow(name="three.flow")
    def flow(_ctx: sf.WorkflowContext, n: int) -> int:
        return noop(noop(noop(n)))

    start_worker(app)
    app.start(flow, 0).result(timeout=20)  # the worker is up and has run one
    before = _execution_writes()
    handle = app.start(flow, 7)
    assert handle.result(timeout=20) == 7

    # One write per step; the third step's shares the run end's transaction.
    assert _execution_writes() - before == 3
    assert [e.position for e in app.store.list_journal(handle.run_id)] == [1, 2, 3]
    assert [a.outcome for a in app.store.list_attempts(handle.run_id)] == [
        AttemptOutcome.SUCCEEDED
    ] * 3


@pytest.fixture
def engine_without_boundary_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broken variant: a step boundary checks the run's controls but does not commit
    the pending step end, which the next step's end then replaces."""

    def checkpoint(self: ExecutionBase) -> None:
        self.control.check(self.lease)

    monkeypatch.setattr(ExecutionBase, "checkpoint", checkpoint)


@pytest.mark.usefixtures("engine_without_boundary_commits")
def test_order_check_catches_an_engine_that_runs_a_step_before_the_last_one_is_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    app, run_id, seen = run_once(make_app, start_worker)

    assert seen[2] == []  # the first step's result was not committed when the second ran
    assert 1 not in [e.position for e in app.store.list_journal(run_id)]
