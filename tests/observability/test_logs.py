"""Log lines carry the ids an operator searches by, and say why the engine acted."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import surefoot as sf
from surefoot.engine import worker as worker_module
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
    with _captured(log_format="console", log_each_run=True) as stream:
        app = make_app()

        @app.workflow
        def quiet(ctx: sf.WorkflowContext) -> None:
            return None

        handle = app.start(quiet, correlation_id="corr-console")
        start_worker(app)
        handle.result(timeout=10)
    text = stream.getvalue()
    assert "run started" in text
    assert "correlation_id=corr-console" in text
    assert not text.lstrip().startswith("{")


@contextmanager
def _captured(**settings: Any) -> Iterator[io.StringIO]:
    """The lines logged inside, as servers and workers log them with these settings."""
    stream = io.StringIO()
    handler = configure_logging(sf.Settings(**settings), stream=stream, replace_handlers=False)
    try:
        yield stream
    finally:
        unconfigure_logging(handler)


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _two_runs(
    make_app: MakeApp,
    start_worker: StartWorker,
    until: Callable[[], bool] | None = None,
    **settings: Any,
) -> tuple[str, str]:
    """One run that succeeds, one dead-lettered; both waited for, then ``until()`` (if
    given) polled until true, then the worker stopped."""
    app = make_app(**settings)

    @app.workflow
    def fine(ctx: sf.WorkflowContext) -> int:
        return 1

    @app.step
    def rejected() -> None:
        raise sf.PermanentError("vendor rejected the invoice")

    @app.workflow
    def doomed(ctx: sf.WorkflowContext) -> None:
        rejected()

    good, bad = app.start(fine), app.start(doomed)
    worker = start_worker(app)
    assert good.result(timeout=10) == 1
    with pytest.raises(sf.RunFailedError):
        bad.result(timeout=10)
    deadline = time.monotonic() + 10
    while until is not None and not until() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop(timeout=10)
    return good.run_id, bad.run_id


def _run_lines(lines: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The lines of the logger of each run that name ``run_id``."""
    return [
        line
        for line in lines
        if line.get("logger") == "surefoot.runs" and line.get("run_id") == run_id
    ]


def test_by_default_a_succeeded_run_has_no_line_and_a_failed_run_always_has_one(
    make_app: MakeApp, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "SUMMARY_S", 0.0)
    with _captured(log_format="json") as stream:
        good, bad = _two_runs(
            make_app,
            start_worker,
            lambda: "runs in the last" in stream.getvalue(),
            heartbeat_s=0.05,
        )
    lines = _json_lines(stream)
    assert _run_lines(lines, good) == []  # neither "run started" nor "succeeded"
    failed = _run_lines(lines, bad)
    assert [line["outcome"] for line in failed] == ["failed"]
    assert failed[0]["level"] == "warning"
    # The worker still says in its own lines how many runs it got through.
    summaries = [line for line in lines if "runs in the last" in line["event"]]
    assert summaries
    assert sum(line["succeeded"] for line in summaries) == 1
    assert sum(line["failed"] for line in summaries) == 1
    stopped = [line for line in lines if "stopped; it ended 2 runs" in line["event"]]
    assert len(stopped) == 1
    assert "1 succeeded, 1 failed, 0 cancelled" in stopped[0]["event"]


def test_log_each_run_writes_a_line_for_each_run_started_and_succeeded(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    with _captured(log_format="json", log_each_run=True) as stream:
        good, bad = _two_runs(make_app, start_worker)
    lines = _json_lines(stream)
    assert [line["event"] for line in _run_lines(lines, good)] == [
        "run started",
        f"run {good} (fine) succeeded",
    ]
    assert [line.get("outcome") for line in _run_lines(lines, bad)] == [None, "failed"]


def test_a_level_above_warning_still_hides_the_lines_of_failed_runs(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    with _captured(log_format="json", log_level="ERROR") as stream:
        _good, bad = _two_runs(make_app, start_worker)
    assert _run_lines(_json_lines(stream), bad) == []
