"""Log lines carry the ids an operator searches by, and say why the engine acted."""

from __future__ import annotations

import io
from typing import Any

import pytest

import surefoot as sf
from surefoot.observability.logging import configure_logging, unconfigure_logging
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.observability.conftest import LogCapture


def test_log_lines_of_a_failing_and_retried_run_carry_its_ids(
    make_app: MakeApp, start_worker: StartWorker, logs: LogCapture
) -> None:
    app = make_app()
    calls = {"n": 0}

    @app.step(retry=sf.Retry(max_attempts=3))
    def flaky(x: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sf.TransientError("upstream busy")
        return x + 1

    @app.workflow
    def flow(ctx: sf.WorkflowContext, x: int) -> int:
        return flaky(x)

    handle = app.start(flow, 1, correlation_id="corr-logs-1")
    start_worker(app)
    assert handle.result(timeout=10) == 2

    lines = [line for line in logs.lines() if line.get("run_id") == handle.run_id]
    failed = [line for line in lines if line.get("failure_class")]
    assert len(failed) == 1
    line = failed[0]
    assert line["workflow"] == "flow"
    assert line["step"].endswith("flaky")
    assert line["attempt"] == 1
    assert line["failure_class"] == "transient"
    assert line["route"] == "retry"
    assert line["decision"]  # why the engine chose to retry
    assert line["correlation_id"] == "corr-logs-1"
    assert line["level"] == "warning"
    assert line["timestamp"]
    # every line of the execution, not only the failure, carries the run's context
    executed = [line for line in lines if line["event"] != "run started"]
    assert executed
    assert all(line["correlation_id"] == "corr-logs-1" for line in lines)
    assert all(line["workflow"] == "flow" for line in executed)
    second = [line for line in lines if line.get("attempt") == 2]
    assert second
    assert {line["step"] for line in second} == {line["step"]}
    finished = [line for line in lines if line["event"].startswith(f"run {handle.run_id}")]
    assert finished
    assert finished[-1]["outcome"] == "succeeded"


def test_a_dead_lettered_run_logs_its_class_and_reason(
    make_app: MakeApp, start_worker: StartWorker, logs: LogCapture
) -> None:
    app = make_app()

    @app.step
    def broken() -> None:
        raise sf.PermanentError("vendor rejected the invoice")

    @app.workflow
    def doomed(ctx: sf.WorkflowContext) -> Any:
        return broken()

    handle = app.start(doomed)
    start_worker(app)
    with pytest.raises(sf.RunFailedError):
        handle.result(timeout=10)
    ended = [
        line
        for line in logs.lines()
        if line.get("run_id") == handle.run_id and line["event"].startswith(f"run {handle.run_id}")
    ]
    assert ended
    assert ended[-1]["outcome"] == "failed"
    assert ended[-1]["failure_class"] == "permanent"
    assert "vendor rejected the invoice" in ended[-1]["reason"]


def test_console_format_renders_readable_lines_with_the_same_fields(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    stream = io.StringIO()
    handler = configure_logging(
        sf.Settings(log_format="console"), stream=stream, replace_handlers=False
    )
    try:
        app = make_app()

        @app.workflow
        def quiet(ctx: sf.WorkflowContext) -> None:
            return None

        handle = app.start(quiet, correlation_id="corr-console")
        start_worker(app)
        handle.result(timeout=10)
    finally:
        unconfigure_logging(handler)
    text = stream.getvalue()
    assert "run started" in text
    assert "correlation_id=corr-console" in text
    assert not text.lstrip().startswith("{")
