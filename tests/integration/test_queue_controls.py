"""Queue controls end to end with real workers: concurrency limits (global and per worker),
rate limits shared by every worker, bounded intake and debounce."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import surefoot as sf
from surefoot.errors import BackPressureError

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]


class Overlap:
    """Counts step bodies running at the same moment, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.starts: list[float] = []

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.starts.append(time.monotonic())

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self.now -= 1


def slow_flow(
    app: sf.App, overlap: Overlap, *, queue: str = "erp", rate_limit: str | None = None
) -> Callable[..., int]:
    @app.step(rate_limit=rate_limit)
    def sync_erp(n: int) -> int:
        with overlap:
            time.sleep(0.05)
        return n

    @app.workflow(queue=queue)
    def push(ctx: sf.WorkflowContext, n: int) -> int:
        return sync_erp(n)

    return push


def two_workers(
    make_app: MakeApp, start_worker: StartWorker, overlap: Overlap, **queue: int
) -> tuple[sf.App, Callable[..., int]]:
    """Two apps (as two worker processes would be) on one store, each with its worker."""
    flows = []
    apps = []
    for index in range(2):
        app = make_app(f"w{index}")
        if queue:
            app.queue("erp", **queue)
        flows.append(slow_flow(app, overlap))
        apps.append(app)
    for app in apps:
        start_worker(app, concurrency=8)
    return apps[0], flows[0]


def test_global_concurrency_holds_across_two_workers(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    overlap = Overlap()
    app, push = two_workers(make_app, start_worker, overlap, concurrency=2)
    handles = [app.start(push, n) for n in range(12)]
    assert [h.result(timeout=20) for h in handles] == list(range(12))
    assert overlap.most <= 2


def test_control_without_a_limit_the_same_load_overlaps_more(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    """Negative control: the limit test would pass vacuously if the load never overlapped."""
    overlap = Overlap()
    app, push = two_workers(make_app, start_worker, overlap)
    handles = [app.start(push, n) for n in range(12)]
    assert [h.result(timeout=20) for h in handles] == list(range(12))
    assert overlap.most > 2


def test_worker_concurrency_limits_one_worker(make_app: MakeApp, start_worker: StartWorker) -> None:
    overlap = Overlap()
    app = make_app()
    app.queue("erp", worker_concurrency=1)
    push = slow_flow(app, overlap)
    start_worker(app, concurrency=8)
    handles = [app.start(push, n) for n in range(5)]
    assert [h.result(timeout=20) for h in handles] == list(range(5))
    assert overlap.most == 1


def test_a_rate_limit_paces_attempts_across_workers(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    overlap = Overlap()
    per_s, burst, runs = 20.0, 2, 16
    apps, flows = [], []
    for index in range(2):
        app = make_app(f"r{index}")
        app.rate_limit("erp-api", per_s=per_s, burst=burst)
        flows.append(slow_flow(app, overlap, queue="default", rate_limit="erp-api"))
        apps.append(app)
    for app in apps:
        start_worker(app, concurrency=8)
    handles = [apps[0].start(flows[0], n) for n in range(runs)]
    assert [h.result(timeout=30) for h in handles] == list(range(runs))
    starts = sorted(overlap.starts)
    # By any moment t after the first start, at most burst + rate * elapsed attempts began.
    # A body starts one commit after its token was taken, so allow that lag (50 ms).
    lag_s = 0.05
    for index, started in enumerate(starts):
        allowed = burst + per_s * (started - starts[0] + lag_s)
        assert index + 1 <= allowed, (index, started - starts[0])
    assert starts[-1] - starts[0] >= (runs - burst) / per_s * 0.9


def test_an_undeclared_rate_limit_is_refused_when_a_worker_starts(make_app: MakeApp) -> None:
    app = make_app()

    @app.step(rate_limit="nope")
    def call() -> int:
        return 1

    with pytest.raises(sf.SurefootError, match="not declared"):
        app.check_definitions()


def test_bounded_intake_answers_with_retry_after_and_recovers(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    app = make_app()
    app.queue("erp", max_depth=3, retry_after_s=2.0)
    push = slow_flow(app, Overlap())
    handles = [app.start(push, n) for n in range(3)]
    with pytest.raises(BackPressureError) as refused:
        app.start(push, 99)
    assert refused.value.retry_after_s == 2.0
    start_worker(app)
    assert [h.result(timeout=20) for h in handles] == [0, 1, 2]
    assert app.start(push, 4).result(timeout=20) == 4


def test_debounced_starts_run_once_with_the_last_inputs(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    app = make_app()
    seen: list[int] = []

    @app.step
    def sync_account(version: int) -> int:
        seen.append(version)
        return version

    @app.workflow
    def refresh(ctx: sf.WorkflowContext, version: int) -> int:
        return sync_account(version)

    start_worker(app)
    handles = [
        app.start(refresh, version, debounce_key="acct-7", debounce_s=0.4)
        for version in range(1, 6)
    ]
    assert len({h.run_id for h in handles}) == 1
    assert handles[0].result(timeout=10) == 5
    assert seen == [5]


def test_debounce_and_idempotency_key_do_not_combine(make_app: MakeApp) -> None:
    app = make_app()

    @app.workflow
    def refresh(ctx: sf.WorkflowContext) -> None:
        return None

    with pytest.raises(sf.SurefootError, match="either debounced or keyed"):
        app.start(refresh, debounce_key="k", debounce_s=1.0, idempotency_key="i")
