"""A worker told of runs that others take claims less often than it is told.

Here the worker is told, again and again, that work may be ready (``App.wake_workers``, as
an operator's command or a start does) while there is none, so each claim it makes in answer
finds nothing, as when another worker took the run first. Each such lost race makes it wait
before its next claim, up to ``MOST_PAUSE_S``, so over ``NEWS_S`` of news it claims at most
about ``NEWS_S / MOST_PAUSE_S`` times, however often it is told; and it still takes a run as
soon as one is started. The negative control is a worker that never waits: it claims as
fast as its claims return.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import surefoot as sf
from surefoot.engine.claim_pace import MOST_PAUSE_S, ClaimPace

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]

NEWS_S = 0.5  # how long the worker keeps being told of work that is not there
POLL_S = 5.0  # the worker's poll interval: no claim within the test comes from a poll
# Claims a pacing worker may make in NEWS_S: one per longest pause, the first few pauses
# shorter, and the claims already under way when the news began and ended.
MOST_CLAIMS = int(NEWS_S / MOST_PAUSE_S) + 8


def claims_while_told_of_runs_it_cannot_take(make_app: MakeApp, start_worker: StartWorker) -> int:
    """How many claims the worker made while told of work for NEWS_S with none there;
    checks that it then took a run at once."""
    app = make_app("paced", poll_interval_s=POLL_S)

    @app.workflow(name="paced.echo")
    def echo(ctx: sf.WorkflowContext, n: int) -> int:
        return n

    claims: list[float] = []
    lock = threading.Lock()
    claim = app.store.claim

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            claims.append(time.monotonic())
        return claim(*args, **kwargs)

    app.store.claim = counted  # type: ignore[method-assign]
    start_worker(app, concurrency=4)
    assert app.start(echo, 1).result(timeout=10) == 1  # the worker is up and listening
    time.sleep(0.2)
    began = time.monotonic()
    while time.monotonic() - began < NEWS_S:
        app.wake_workers()
        time.sleep(0.0001)
    with lock:
        told = sum(began <= at <= began + NEWS_S for at in claims)
    taken = time.monotonic()
    assert app.start(echo, 2).result(timeout=10) == 2
    assert time.monotonic() - taken < POLL_S / 2  # answered by its claim, not its poll
    return told


def test_a_worker_that_keeps_losing_races_claims_less_often(
    make_app: MakeApp, start_worker: StartWorker
):
    assert claims_while_told_of_runs_it_cannot_take(make_app, start_worker) <= MOST_CLAIMS


def test_a_worker_that_never_waits_after_a_lost_race_is_caught(
    make_app: MakeApp, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
):
    # Negative control: no pause, a claim for nearly every start heard of.
    monkeypatch.setattr(ClaimPace, "pause_s", lambda _self: 0.0)
    assert claims_while_told_of_runs_it_cannot_take(make_app, start_worker) > MOST_CLAIMS
