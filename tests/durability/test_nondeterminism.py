"""A workflow changed under an in-flight run fails loudly; it is never mis-replayed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

import surefoot as sf
from surefoot.domain.status import JournalStatus, RunStatus
from tests.durability.support.procs import wait_until


def _declare(app: sf.App, order: tuple[str, str], calls: list[str]) -> sf.App:
    """The ``checkout`` workflow: a step, a durable wait for payment, a step."""

    def make(name: str) -> Callable[[str], str]:
        def body(value: str) -> str:
            calls.append(name)
            return f"{name}:{value}"

        return app.step(name=name)(body)

    first, second = (make(name) for name in order)

    @app.workflow(name="checkout")
    def checkout(ctx: sf.WorkflowContext, sku: str) -> str:
        done = first(sku)
        ctx.wait_for("paid", timeout_s=60)
        return second(done)

    return app


@pytest.mark.parametrize(
    "changed",
    [("reserve_inventory", "charge_card"), ("charge_card", "reserve_stock")],
    ids=["renamed", "reordered"],
)
def test_changed_workflow_fails_permanently_naming_both_steps(make_app, start_worker, changed):
    v1_calls: list[str] = []
    v1 = _declare(make_app("v1"), ("reserve_stock", "charge_card"), v1_calls)
    old_worker = start_worker(v1)
    handle = v1.start("checkout", "sku-1")
    wait_until(lambda: handle.status() is RunStatus.WAITING, timeout_s=10, what="the run to wait")
    old_worker.stop(timeout=10)
    assert v1_calls == ["reserve_stock"]

    v2_calls: list[str] = []
    v2 = _declare(make_app("v2"), changed, v2_calls)
    start_worker(v2)
    v2.send_event(handle.run_id, "paid", {"amount": 10})
    with pytest.raises(sf.RunFailedError, match="permanent"):
        v2.handle(handle.run_id).result(timeout=10)

    recorded, now_called = "reserve_stock", changed[0]
    run = v2.store.get_run(handle.run_id)
    assert run is not None
    assert run.status is RunStatus.FAILED
    error = json.loads(run.error or "{}")
    assert error["failure_class"] == "permanent"
    assert error["error"]["type"].endswith("NonDeterminismError")
    assert recorded in error["reason"]
    assert now_called in error["reason"]
    dead = v2.store.get_dead_letter(handle.run_id)
    assert dead is not None
    assert dead.failure_class is sf.FailureClass.PERMANENT
    assert recorded in dead.reason
    assert now_called in dead.reason
    assert not dead.compensated
    # Nothing of the new code ran, and the committed history is untouched.
    assert v2_calls == []
    journal = v2.store.list_journal(handle.run_id)
    assert (journal[0].position, journal[0].name, journal[0].status) == (
        1,
        recorded,
        JournalStatus.COMMITTED,
    )
