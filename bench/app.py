"""The benchmark app: no-op steps, a long durable sleep, and a step a worker dies inside.

Workers load it as ``bench.app:app`` (store from ``SUREFOOT_STORE_URL`` or ``--store``);
the benchmark's client builds its own instance per database with :func:`build`.
"""

from __future__ import annotations

import time
from typing import Any

import surefoot as sf

# How long the first attempt of ``hold`` blocks: far longer than any benchmark waits,
# so the worker is always killed inside it. Later attempts return at once.
HOLD_FIRST_ATTEMPT_S = 120.0
# How long ``sleeper`` waits durably: it never wakes during a benchmark.
SLEEP_S = 3_600.0
# How long ``nap`` waits durably: the timed wake-ups measure how late it ends.
NAP_S = 0.1


def build(store: str | None = None, **settings: Any) -> sf.App:
    """A fresh App with the benchmark's workflows (``store``: a URL, else the environment's;
    ``settings``: overrides of :class:`surefoot.Settings`)."""
    app = sf.App("bench", store=store, **settings)

    @app.step(name="bench.noop", idempotent=True)
    def noop(value: int) -> int:
        # A no-op is idempotent: its start is committed with its end (one commit per step).
        return value

    @app.step(name="bench.recorded_noop")
    def recorded_noop(value: int) -> int:
        # The same, not declared idempotent: its start is committed before it runs.
        return value

    @app.step(name="bench.hold", idempotent=True)
    def hold(value: int) -> int:
        # A worker killed here leaves the attempt interrupted; the step is idempotent, so
        # the new worker retries it, and the retry returns at once.
        if sf.current_step().attempt == 1:
            time.sleep(HOLD_FIRST_ATTEMPT_S)
        return value

    @app.workflow
    def three_steps(ctx: sf.WorkflowContext, value: int) -> int:  # noqa: ARG001
        return noop(noop(noop(value)))

    @app.workflow
    def warm_up(ctx: sf.WorkflowContext, value: int) -> int:  # noqa: ARG001
        # ``three_steps`` under another name: runs made before a measurement, not counted.
        return noop(noop(noop(value)))

    @app.workflow
    def three_recorded_steps(ctx: sf.WorkflowContext, value: int) -> int:  # noqa: ARG001
        return recorded_noop(recorded_noop(recorded_noop(value)))

    @app.workflow
    def nap(ctx: sf.WorkflowContext, value: int) -> int:
        ctx.sleep(NAP_S)
        return noop(value)

    @app.workflow
    def sleeper(ctx: sf.WorkflowContext, value: int) -> int:
        ctx.sleep(SLEEP_S)
        return value

    @app.workflow
    def held(ctx: sf.WorkflowContext, value: int) -> int:  # noqa: ARG001
        return noop(hold(noop(value)))

    return app


def build_single(store: str | None = None, **settings: Any) -> sf.App:
    """An App with ``three_steps`` alone: a deployment of one workflow (``bench.history``).
    A worker asks the store about the workflows it serves, and how a store plans a question
    about one workflow is not how it plans one about seven."""
    app = sf.App("bench-single", store=store, **settings)

    @app.step(name="bench.noop", idempotent=True)
    def noop(value: int) -> int:
        return value

    @app.workflow
    def three_steps(ctx: sf.WorkflowContext, value: int) -> int:  # noqa: ARG001
        return noop(noop(noop(value)))

    return app


app = build()
single = build_single()
