"""Running workflows in one process: idempotent starts, sync and async code, typed results that
are the same live and on replay, and the errors RunHandle.result raises."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest
from pydantic import BaseModel

import surefoot as sf
from surefoot.domain.records import RunFilter
from surefoot.ops import runs


class Quote(BaseModel):
    currency: str
    amount: Decimal


def wait_status(handle: sf.RunHandle, status: sf.RunStatus, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() is not status:
        assert time.monotonic() < deadline, f"run is {handle.status()}, expected {status}"
        time.sleep(0.01)


def test_same_idempotency_key_returns_the_same_run_and_runs_it_once(make_app, start_worker):
    app: sf.App = make_app()
    executions: list[str] = []

    @app.step
    def book(invoice_id: str) -> str:
        executions.append(invoice_id)
        return f"booked {invoice_id}"

    @app.workflow
    def flow(ctx: sf.WorkflowContext, invoice_id: str) -> str:
        return book(invoice_id)

    first = app.start(flow, "INV-1", idempotency_key="INV-1")
    second = app.start(flow, "INV-1", idempotency_key="INV-1")
    assert second.run_id == first.run_id
    start_worker(app)
    assert first.result(timeout=10) == "booked INV-1"
    third = app.start(flow, "INV-1", idempotency_key="INV-1")
    assert third.run_id == first.run_id
    assert third.result(timeout=1) == "booked INV-1"
    assert executions == ["INV-1"]
    assert app.store.count_runs(RunFilter()) == 1


def test_concurrent_starts_with_one_idempotency_key_create_one_run(make_app):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext, n: int) -> int:
        return n

    barrier = threading.Barrier(8)
    run_ids: list[str] = []

    def start() -> None:
        barrier.wait()
        run_ids.append(app.start(flow, 1, idempotency_key="same").run_id)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(run_ids) == 8
    assert len(set(run_ids)) == 1
    assert app.store.count_runs(RunFilter()) == 1


def test_idempotency_key_is_found_as_a_run_reference(make_app):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> None: ...

    handle = app.start(flow, idempotency_key="order-7")
    assert runs.get_run(app, "order-7").run_id == handle.run_id


def test_sync_workflow_with_sync_steps_completes(make_app, start_worker):
    app: sf.App = make_app()

    @app.step
    def add(a: int, b: int) -> int:
        return a + b

    @app.workflow
    def flow(ctx: sf.WorkflowContext, a: int, b: int) -> int:
        return add(add(a, b), 10)

    start_worker(app)
    assert app.start(flow, 1, 2).result(timeout=10) == 13


def test_async_workflow_with_async_and_sync_steps_completes_across_a_replay(make_app, start_worker):
    app: sf.App = make_app()
    calls: list[str] = []

    @app.step
    async def fetch(n: int) -> int:
        calls.append("fetch")
        await asyncio.sleep(0)
        return n * 10

    @app.step
    def add_one(n: int) -> int:
        calls.append("add_one")
        return n + 1

    @app.workflow
    async def flow(ctx: sf.WorkflowContext, n: int) -> int:
        fetched = await fetch(n)
        ctx.sleep(0.05)
        return add_one(fetched)

    start_worker(app)
    assert app.start(flow, 4).result(timeout=10) == 41
    assert calls == ["fetch", "add_one"]


def test_step_results_decode_by_annotation_identically_live_and_on_replay(make_app, start_worker):
    app: sf.App = make_app()
    seen: list[tuple[Decimal, Quote]] = []
    calls: list[Decimal] = []

    @app.step
    def fee(amount: Decimal) -> Decimal:
        calls.append(amount)
        return amount * Decimal("0.015")

    @app.step
    def quote(amount: Decimal) -> Quote:
        return Quote(currency="EUR", amount=amount)

    @app.workflow
    def flow(ctx: sf.WorkflowContext, amount: Decimal) -> Decimal:
        charged = fee(amount)
        offer = quote(charged)
        seen.append((charged, offer))
        ctx.sleep(0.05)
        return charged

    start_worker(app)
    result = app.start(flow, Decimal("100.10")).result(timeout=10)
    assert len(seen) == 2, "the workflow body ran live once and replayed once"
    (live_fee, live_quote), (replayed_fee, replayed_quote) = seen
    assert type(live_fee) is type(replayed_fee) is Decimal
    assert live_fee.as_tuple() == replayed_fee.as_tuple() == Decimal("1.50150").as_tuple()
    assert type(live_quote) is type(replayed_quote) is Quote
    assert live_quote == replayed_quote
    assert result == live_fee
    assert isinstance(result, Decimal)
    assert calls == [Decimal("100.10")]


def test_every_attempt_of_a_step_carries_the_same_idempotency_key(make_app, start_worker):
    app: sf.App = make_app()
    keys: list[str] = []

    @app.step(retry=sf.Retry(max_attempts=3))
    def post(n: int) -> int:
        keys.append(sf.current_step().idempotency_key)
        if len(keys) < 3:
            raise sf.TransientError("busy")
        return n

    @app.workflow
    def flow(ctx: sf.WorkflowContext, n: int) -> int:
        return post(n)

    start_worker(app)
    handle = app.start(flow, 1)
    assert handle.result(timeout=10) == 1
    assert keys == [f"{handle.run_id}:1"] * 3


def test_result_of_a_failed_run_raises_run_failed_with_class_and_reason(make_app, start_worker):
    app: sf.App = make_app()

    @app.step
    def charge(card: str) -> str:
        raise sf.PermanentError(f"card {card} was declined")

    @app.workflow
    def flow(ctx: sf.WorkflowContext, card: str) -> str:
        return charge(card)

    start_worker(app)
    handle = app.start(flow, "4242")
    with pytest.raises(sf.RunFailedError, match=r"failed \(permanent\).*card 4242 was declined"):
        handle.result(timeout=10)
    assert handle.status() is sf.RunStatus.FAILED


def test_result_of_a_run_exhausting_its_retries_raises_run_failed(make_app, start_worker):
    app: sf.App = make_app()

    @app.step(retry=sf.Retry(max_attempts=2))
    def call(n: int) -> int:
        raise sf.TransientError("still busy")

    @app.workflow
    def flow(ctx: sf.WorkflowContext, n: int) -> int:
        return call(n)

    start_worker(app)
    with pytest.raises(sf.RunFailedError, match=r"\(transient\).*gave up after 2 attempts"):
        app.start(flow, 1).result(timeout=10)


def test_result_of_a_cancelled_run_raises_run_cancelled(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> str:
        return str(ctx.wait_for("never"))

    start_worker(app)
    handle = app.start(flow)
    wait_status(handle, sf.RunStatus.WAITING)
    runs.cancel_run(app, handle.run_id, actor="ops", reason="customer withdrew")
    with pytest.raises(sf.RunCancelledError, match="cancelled"):
        handle.result(timeout=10)
    assert handle.status() is sf.RunStatus.CANCELLED


def test_result_timeout_raises_result_timeout_and_leaves_the_run_alone(make_app):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext) -> None: ...

    handle = app.start(flow)
    started = time.monotonic()
    with pytest.raises(sf.ResultTimeoutError, match=r"still pending after 0\.2s"):
        handle.result(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 5.0
    assert handle.status() is sf.RunStatus.PENDING


def test_result_async_returns_the_output(make_app, start_worker):
    app: sf.App = make_app()

    @app.workflow
    def flow(ctx: sf.WorkflowContext, n: int) -> int:
        return n + 1

    start_worker(app)
    handle = app.start(flow, 41)
    assert asyncio.run(handle.result_async(timeout=10)) == 42


def test_result_of_an_unknown_run_is_run_not_found(make_app):
    app: sf.App = make_app()
    with pytest.raises(sf.errors.RunNotFoundError):
        app.handle("no-such-run").result(timeout=1)
