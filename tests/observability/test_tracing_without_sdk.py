"""Without a tracer provider nothing is recorded, but a run's stored trace context is still
the current one inside its execution and its steps (so outbound calls and child runs carry
it), exactly as OpenTelemetry's API does on its own.

These tests run in a fresh interpreter: the other observability tests install a provider
for the whole process, and a provider cannot be uninstalled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    import surefoot as sf
    from surefoot.observability import tracing

    seen = {"installed": tracing.tracer_provider_installed()}
    app = sf.App("untraced", store=sys.argv[1], instant_retries=True, poll_interval_s=0.02)

    @app.step
    def look(attempt_fails: bool) -> str:
        span = trace.get_current_span()
        seen.setdefault("in_step", []).append(
            [tracing.current_traceparent(), span.is_recording()]
        )
        if attempt_fails and len(seen["in_step"]) == 1:
            raise sf.TransientError("once")
        return "ok"

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> str:
        seen.setdefault("in_run", []).append(tracing.current_traceparent())
        return look(True) + look(False)

    before = otel_context.get_current()
    handle = app.start(flow)
    with sf.Worker(app):
        assert handle.result(timeout=20) == "okok"
    seen["stored"] = handle.record().trace_context
    seen["outside"] = tracing.current_traceparent()
    seen["context_restored"] = otel_context.get_current() == before
    with tracing.ingress({"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}):
        seen["joined"] = app.start(flow).record().trace_context
    app.close()
    print(json.dumps(seen))
    """
)


def _run(tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, f"sqlite:///{tmp_path / 'surefoot.db'}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_a_provider_the_stored_trace_context_is_current_in_runs_and_steps(
    tmp_path: Path,
) -> None:
    seen = _run(tmp_path)
    assert seen["installed"] is False
    stored = seen["stored"]
    assert stored is not None
    assert seen["in_run"]
    assert set(seen["in_run"]) == {stored}
    assert seen["in_step"] == [[stored, False], [stored, False], [stored, False]]
    assert seen["outside"] is None
    assert seen["context_restored"] is True
    assert seen["joined"].split("-")[1] == "ab" * 16
