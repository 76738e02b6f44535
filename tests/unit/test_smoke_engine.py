"""A first end-to-end check of the engine inside one process."""

from __future__ import annotations

from collections.abc import Callable

import surefoot as sf


def test_workflow_with_retry_sleep_and_event_completes(
    make_app: Callable[..., sf.App], start_worker: Callable[..., sf.Worker]
) -> None:
    app = make_app()
    calls: list[tuple[int, int]] = []

    @app.step(retry=sf.Retry(max_attempts=3))
    def add(a: int, b: int) -> int:
        calls.append((a, b))
        if len(calls) == 1:
            raise sf.TransientError("flaky")
        return a + b

    @app.workflow
    def flow(ctx: sf.WorkflowContext, x: int) -> int:
        y = add(x, 1)
        ctx.sleep(0.05)
        payload = ctx.wait_for("go", timeout_s=10)
        return add(y, int(payload["n"]))

    start_worker(app)
    handle = app.start(flow, 1)
    app.send_event(handle.run_id, "go", {"n": 5})
    assert handle.result(timeout=10) == 7
    assert calls == [(1, 1), (1, 1), (2, 5)]
