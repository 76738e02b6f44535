"""Workflows the durability tests run, declared on any App by :func:`register`.

Workers load ``tests.durability.support.flows:app``; tests register the same
workflows on an App bound to their own store, so both sides agree on names.
Every step body records itself in the ledger named by ``DURABILITY_LEDGER``.
"""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

import surefoot as sf
from tests.durability.support.ledger import LEDGER_ENV, Ledger

SLEEP_S = 0.3
EVENT = "approved"


@cache
def _ledger(path: str) -> Ledger:
    return Ledger(Path(path))


def ledger() -> Ledger:
    """The ledger named by the environment, read at call time."""
    path = os.environ.get(LEDGER_ENV)
    if not path:
        raise RuntimeError(f"{LEDGER_ENV} is not set; the durability steps need a ledger")
    return _ledger(path)


def _value(label: str) -> str:
    return f"{sf.current_step().step}:{label}"


# -- step bodies and hooks ----------------------------------------------------------------------
def post(label: str) -> str:
    """A non-idempotent effect: every execution lands once more in the ledger."""
    return ledger().apply(_value(label), idempotent=False)


def post_keyed(label: str, pause_s: float = 0.0) -> str:
    """An effect the external system dedupes by idempotency key."""
    time.sleep(pause_s)
    return ledger().apply(_value(label), idempotent=True)


def post_slowly(label: str, pause_s: float = 0.0) -> str:
    time.sleep(pause_s)
    return ledger().apply(_value(label), idempotent=False)


def settle(label: str, fail: bool) -> str:
    if fail:
        raise sf.PermanentError(f"settlement of {label} refused")
    return ledger().apply(_value(label), idempotent=False)


def find_effect(_step: sf.StepContext, key: str) -> sf.Found | sf.NotFound:
    """The reconcile hook: look the effect up by idempotency key."""
    value = ledger().find(key)
    return sf.NotFound() if value is None else sf.Found(value)


def reverse(result: str, label: str) -> str:
    """Compensation: undo a posting; the external system dedupes undos by key."""
    return ledger().apply(f"undo:{result}:{label}", idempotent=True)


# -- workflows ----------------------------------------------------------------------------------
def register(app: sf.App) -> sf.App:
    """Declare every durability workflow on ``app``; returns it."""
    reserve, invoice, ship = (
        app.step(name=f"ledger.{name}", reconcile=find_effect, compensate=reverse)(post)
        for name in ("reserve", "invoice", "ship")
    )
    settle_step = app.step(name="ledger.settle", reconcile=find_effect)(settle)

    @app.workflow(name="ledger_flow")
    def ledger_flow(ctx: sf.WorkflowContext, index: int, fail: bool = False) -> list[str]:
        done = [reserve(f"r{index}"), invoice(f"i{index}")]
        ctx.sleep(SLEEP_S)
        done.append(ship(f"s{index}"))
        done.append(settle_step(f"t{index}", fail))
        return done

    keyed = [
        app.step(name=f"keyed.{name}", idempotent=True)(post_keyed)
        for name in ("reserve", "invoice", "ship", "settle")
    ]

    @app.workflow(name="keyed_flow")
    def keyed_flow(ctx: sf.WorkflowContext, index: int, pause_s: float = 0.0) -> list[str]:
        done = [keyed[0](f"r{index}", pause_s), keyed[1](f"i{index}", pause_s)]
        ctx.sleep(SLEEP_S)
        done += [keyed[2](f"s{index}", pause_s), keyed[3](f"t{index}", pause_s)]
        return done

    repeated = app.step(name="keyed.line", idempotent=True)(post_keyed)

    @app.workflow(name="lines_flow")
    def lines_flow(ctx: sf.WorkflowContext, index: int) -> list[str]:
        # One quick idempotent step, three times: known to be quick once it has run.
        return [repeated(f"l{index}.{line}") for line in range(3)]

    charge = app.step(name="blind.charge")(post_slowly)
    receipt = app.step(name="blind.receipt")(post_slowly)

    @app.workflow(name="blind_flow")
    def blind_flow(ctx: sf.WorkflowContext, index: int, pause_s: float = 0.0) -> list[str]:
        return [charge(f"c{index}", pause_s), receipt(f"r{index}", pause_s)]

    careful = app.step(name="careful.post", reconcile=find_effect)(post_slowly)

    @app.workflow(name="careful_flow")
    def careful_flow(ctx: sf.WorkflowContext, index: int, pause_s: float = 0.0) -> list[str]:
        return [careful(f"p{index}", pause_s)]

    before = app.step(name="waits.before", reconcile=find_effect)(post)
    after = app.step(name="waits.after", reconcile=find_effect)(post)

    @app.workflow(name="sleep_flow")
    def sleep_flow(ctx: sf.WorkflowContext, index: int, sleep_s: float) -> list[str]:
        first = before(f"b{index}")
        ctx.sleep(sleep_s)
        return [first, after(f"a{index}")]

    @app.workflow(name="event_flow")
    def event_flow(ctx: sf.WorkflowContext, index: int) -> list[str]:
        first = before(f"b{index}")
        payload = ctx.wait_for(EVENT, timeout_s=120)
        return [first, after(f"a{index}:{payload['by']}")]

    @app.workflow(name="echo")
    def echo(ctx: sf.WorkflowContext, n: int) -> int:
        return n

    return app


app = register(sf.App("durability"))
