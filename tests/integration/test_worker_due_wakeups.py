"""What falls due by time alone is taken on time, not at the worker's next poll.

A durable sleep ending and a dead worker's lease expiring make a run claimable without a
commit that could wake anyone. The worker here polls only every POLL_S; it asks the store
when the next run falls due (``next_due``) and sleeps until then instead, so a short sleep
ends and an abandoned run is taken over well before that poll. The negative control is a
store that never says: the same runs then wait for the poll, which the timings catch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import surefoot as sf
from surefoot.engine.runtime import utc_now
from surefoot.store.sqlite import SQLiteStore

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]

POLL_S = 3.0  # the worker's poll interval: far longer than the waits below
SLEEP_S = 0.3
LEASE_S = 1.0
ON_TIME_S = 2.0  # what "on time" means here, with room for a slow machine, below POLL_S


def _sleeping_app(make_app: MakeApp) -> tuple[sf.App, Callable[..., Any]]:
    app = make_app("due", poll_interval_s=POLL_S)

    @app.step(name="due.double", idempotent=True)
    def double(n: int) -> int:
        return n * 2

    @app.workflow(name="due.nap")
    def nap(ctx: sf.WorkflowContext, n: int) -> int:
        ctx.sleep(SLEEP_S)
        return double(n)

    return app, nap


def seconds_for_a_short_sleep(make_app: MakeApp, start_worker: StartWorker) -> float:
    app, nap = _sleeping_app(make_app)
    start_worker(app, concurrency=4)
    started = time.monotonic()
    assert app.start(nap, 21).result(timeout=3 * POLL_S) == 42
    return time.monotonic() - started


def seconds_to_take_over_an_abandoned_run(make_app: MakeApp, start_worker: StartWorker) -> float:
    """A run claimed by a worker that then vanished (no heartbeat, no end): how long after
    its lease expired another worker, idle and polling every POLL_S, had finished it."""
    app, nap = _sleeping_app(make_app)
    handle = app.start(nap, 4)
    (claimed,) = app.store.claim(
        "vanished", workflows=["due.nap"], queues=None, limit=1, lease_s=LEASE_S, now=utc_now()
    )
    assert claimed.run.lease_expires_at is not None
    start_worker(app, concurrency=4)
    assert handle.result(timeout=3 * POLL_S) == 8
    return (utc_now() - claimed.run.lease_expires_at).total_seconds() - SLEEP_S


def test_a_short_durable_sleep_ends_on_time_not_at_the_next_poll(
    make_app: MakeApp, start_worker: StartWorker
):
    assert seconds_for_a_short_sleep(make_app, start_worker) < ON_TIME_S


def test_an_abandoned_run_is_taken_over_as_its_lease_expires(
    make_app: MakeApp, start_worker: StartWorker
):
    assert seconds_to_take_over_an_abandoned_run(make_app, start_worker) < ON_TIME_S


@pytest.fixture
def store_that_never_says_when(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broken variant: the store never tells when the next run falls due."""
    monkeypatch.setattr(SQLiteStore, "next_due", lambda *_args, **_kwargs: None)


@pytest.mark.usefixtures("store_that_never_says_when")
def test_a_sleep_that_waits_for_the_poll_is_caught(make_app: MakeApp, start_worker: StartWorker):
    assert seconds_for_a_short_sleep(make_app, start_worker) >= ON_TIME_S


@pytest.mark.usefixtures("store_that_never_says_when")
def test_a_takeover_that_waits_for_the_poll_is_caught(make_app: MakeApp, start_worker: StartWorker):
    assert seconds_to_take_over_an_abandoned_run(make_app, start_worker) >= ON_TIME_S
