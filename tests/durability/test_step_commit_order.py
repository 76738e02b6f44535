"""A step's result is committed before anything that may depend on it outside the run.

The engine holds a successful idempotent step's end (its start was not written) and
commits it with the run's next write. The ends of *quick* steps (their bodies returned
within ``quick_step_s``) may gather while more quick steps run; any other end is
committed at the next step boundary, before the next step or wait begins. A step whose
start is written first, a wait, any other write and the run's end commit every held end
first, or in the same transaction. These tests look from outside the worker, through a
store of their own, from inside each step body, at which earlier steps are committed
there. The negative controls run an engine that skips the commit at the step boundary,
and one that takes every step for quick; the same checks must catch them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import surefoot as sf
from surefoot.domain.status import AttemptOutcome, RunStatus
from surefoot.engine.execution import MAX_HELD_STEPS, ExecutionBase
from surefoot.store.base import StepCommit
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


def noter(observer: sf.App, seen: Seen) -> Callable[[], None]:
    """Called in a step body: note which positions ``observer`` shows committed now."""

    def note() -> None:
        step = sf.current_step()
        seen[step.position] = [e.position for e in observer.store.list_journal(step.run_id)]

    return note


def declare(app: sf.App, observer: sf.App, seen: Seen) -> Callable[..., Any]:
    """Four steps: idempotent ones (nothing is written before their bodies), one whose
    start is written first, and a durable wait between them. Each body notes which
    positions the store shows committed when it runs."""

    note = noter(observer, seen)

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


def run_once(
    make_app: MakeApp, start_worker: StartWorker, settings: dict[str, float], *, runs: int = 1
) -> tuple[sf.App, str, Seen]:
    """Run the workflow ``runs`` times, one after the other, on one worker; what the last
    run's steps saw."""
    seen: Seen = {}
    app = make_app("order", **settings)
    flow = declare(app, make_app("observer"), seen)
    start_worker(app)
    for _ in range(runs):
        seen.clear()
        handle = app.start(flow, 1)
        assert handle.result(timeout=20) == ((1 + 1) * 2 + 3) * 10
    return app, handle.run_id, seen


# Generous, so that a quick step stays quick on a loaded machine (the bodies read the store).
QUICK = {"quick_step_s": 0.5}
NEVER_HELD = {"quick_step_s": 0.0}


def test_with_quick_step_s_zero_each_step_runs_only_after_every_earlier_result_is_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    app, run_id, seen = run_once(make_app, start_worker, NEVER_HELD)

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


def test_with_quick_step_s_zero_async_steps_run_only_after_earlier_results_are_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    seen: Seen = {}
    app, observer = make_app("async-order", **NEVER_HELD), make_app("async-observer")

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


def _writes_after(base: float, writes: int) -> float:
    """The count of execution writes once it has reached ``base + writes`` (bounded wait),
    and a moment past it, so that a write too many shows too."""
    deadline = time.monotonic() + 5
    while _execution_writes() - base < writes and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    return _execution_writes()


@pytest.mark.parametrize(
    ("settings", "writes"),
    [
        # Quick steps' ends all commit with the run's end: one write.
        (QUICK, 1),
        # Never held past a boundary: one write per step, the third with the run's end.
        (NEVER_HELD, 3),
    ],
)
def test_step_ends_share_the_runs_next_write(
    make_app: MakeApp, start_worker: StartWorker, settings: dict[str, float], writes: int
):
    app = make_app("three", **settings)

    @app.step(name="three.noop", idempotent=True)
    def noop(n: int) -> int:
        return n

    @app.workflow(name="three.flow")
    def flow(_ctx: sf.WorkflowContext, n: int) -> int:
        return noop(noop(noop(n)))

    start_worker(app)
    # The worker is up and has run one. It records a write's latency after the commit
    # returns, and the client may see the committed run first: the count of the first
    # run's writes must settle before it is taken as the base of the second's.
    first = _execution_writes()
    app.start(flow, 0).result(timeout=20)
    before = _writes_after(first, writes)
    handle = app.start(flow, 7)
    assert handle.result(timeout=20) == 7
    assert _writes_after(before, writes) - before == writes
    assert [e.position for e in app.store.list_journal(handle.run_id)] == [1, 2, 3]
    assert [a.outcome for a in app.store.list_attempts(handle.run_id)] == [
        AttemptOutcome.SUCCEEDED
    ] * 3


@pytest.fixture
def engine_without_boundary_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broken variant: a step boundary checks the run's controls but never commits
    the held step ends, whatever the setting."""

    def checkpoint(self: ExecutionBase, _next_step: str | None = None) -> None:
        self.control.check(self.lease)

    monkeypatch.setattr(ExecutionBase, "checkpoint", checkpoint)


@pytest.mark.usefixtures("engine_without_boundary_commits")
def test_order_check_catches_an_engine_that_runs_a_step_before_the_last_one_is_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    app, run_id, seen = run_once(make_app, start_worker, NEVER_HELD)

    # The first step's result was not committed when the second ran, though the setting
    # says no end may be held past a step boundary; it was committed with a later write.
    assert seen[2] == []
    assert [e.position for e in app.store.list_journal(run_id)] == [1, 2, 3, 4, 5]


# -- held ends of quick steps ------------------------------------------------------------------
def test_a_step_not_yet_run_in_the_process_finds_every_earlier_end_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    _app, _run_id, seen = run_once(make_app, start_worker, QUICK)

    # The worker had never run order.price: it might be long, so the quick first step's
    # end was committed before it.
    assert seen == {1: [], 2: [1], 3: [1, 2], 5: [1, 2, 3, 4]}


def test_a_step_whose_start_is_written_runs_only_after_every_held_end_is_committed(
    make_app: MakeApp, start_worker: StartWorker
):
    app, run_id, seen = run_once(make_app, start_worker, QUICK, runs=2)

    # Second run: both quick idempotent steps ran before either was committed; the step
    # whose start is written first (charge) found both committed, and so did the step
    # after the wait.
    assert seen == {1: [], 2: [], 3: [1, 2], 5: [1, 2, 3, 4]}
    assert [e.position for e in app.store.list_journal(run_id)] == [1, 2, 3, 4, 5]
    attempts = app.store.list_attempts(run_id)
    assert [(a.position, a.outcome) for a in attempts] == [
        (p, AttemptOutcome.SUCCEEDED) for p in (1, 2, 3, 5)
    ]


SLOW_S = 0.2


def declare_slow(app: sf.App, observer: sf.App, seen: Seen) -> Callable[..., Any]:
    """A quick step, a slow one (longer than ``quick_step_s``), then a quick one."""

    note = noter(observer, seen)

    @app.step(name="slow.quick", idempotent=True)
    def quick(n: int) -> int:
        note()
        return n + 1

    @app.step(name="slow.slow", idempotent=True)
    def slow(n: int) -> int:
        note()
        time.sleep(SLOW_S)
        return n + 1

    @app.workflow(name="slow.flow")
    def flow(_ctx: sf.WorkflowContext, n: int) -> int:
        return quick(slow(quick(n)))

    return flow


def run_slow(make_app: MakeApp, start_worker: StartWorker) -> list[Seen]:
    """The quick-slow-quick workflow twice, one after the other: what each run saw."""
    app = make_app("slow", quick_step_s=SLOW_S / 2)
    seen: Seen = {}
    flow = declare_slow(app, make_app("slow-observer"), seen)
    start_worker(app)
    runs = []
    for _ in range(2):
        seen.clear()
        assert app.start(flow, 0).result(timeout=20) == 3
        runs.append(dict(seen))
    return runs


def test_a_slow_step_never_runs_while_an_earlier_end_is_held_nor_is_its_own_end_held(
    make_app: MakeApp, start_worker: StartWorker
):
    first, second = run_slow(make_app, start_worker)

    # Before the slow step (not yet run in the process; then known to be slow) the quick
    # first step's end was committed; the slow step's end was committed before the third
    # step ran: a crash there re-runs no slow step.
    assert first == second == {1: [], 2: [1], 3: [1, 2]}


@pytest.fixture
def engine_that_holds_every_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken variant: every step counts as quick, however long its body ran."""
    hold = ExecutionBase.hold

    def hold_all(self: ExecutionBase, step: StepCommit, *, quick: bool) -> None:
        hold(self, step, quick=True)

    monkeypatch.setattr(ExecutionBase, "hold", hold_all)


@pytest.mark.usefixtures("engine_that_holds_every_end")
def test_slow_step_check_catches_an_engine_that_holds_a_slow_steps_end(
    make_app: MakeApp, start_worker: StartWorker
):
    _first, second = run_slow(make_app, start_worker)

    assert second[3] == [1]


class _AllQuick(dict[str, bool]):
    def get(self, _key: str, _default: object = None) -> bool:
        return True


@pytest.fixture
def engine_that_takes_every_next_step_for_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken variant: ends are held over any step, whatever it took when it last ran."""
    checkpoint = ExecutionBase.checkpoint

    def blind(self: ExecutionBase, next_step: str | None = None) -> None:
        self.rt.quick_steps = _AllQuick()
        checkpoint(self, next_step)

    monkeypatch.setattr(ExecutionBase, "checkpoint", blind)


@pytest.mark.usefixtures("engine_that_takes_every_next_step_for_quick")
def test_slow_step_check_catches_an_engine_that_holds_ends_over_a_slow_step(
    make_app: MakeApp, start_worker: StartWorker
):
    first, second = run_slow(make_app, start_worker)

    assert first[2] == second[2] == []


def test_no_more_than_max_held_steps_ends_are_held(make_app: MakeApp, start_worker: StartWorker):
    seen: Seen = {}
    app, observer = make_app("many", **QUICK), make_app("many-observer")
    total = MAX_HELD_STEPS + 5

    @app.step(name="many.noop", idempotent=True)
    def noop(n: int) -> int:
        step = sf.current_step()
        seen[step.position] = [e.position for e in observer.store.list_journal(step.run_id)]
        return n

    @app.workflow(name="many.flow")
    def flow(_ctx: sf.WorkflowContext, n: int) -> int:
        for _ in range(total):
            n = noop(n)
        return n

    start_worker(app)
    handle = app.start(flow, 5)
    assert handle.result(timeout=20) == 5

    held = list(range(1, MAX_HELD_STEPS + 1))
    assert seen[MAX_HELD_STEPS] == []
    assert seen[MAX_HELD_STEPS + 1] == held  # the first MAX_HELD_STEPS, in one commit
    assert seen[total] == held
    assert [e.position for e in app.store.list_journal(handle.run_id)] == list(range(1, total + 1))
