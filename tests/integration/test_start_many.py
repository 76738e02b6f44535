"""``App.start_many``: many runs of one workflow in one commit, each the run ``start``
would make, all of them or none."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pytest

import surefoot as sf
from surefoot.domain.queues import QueueSpec
from surefoot.domain.records import NewRun, RunFilter, RunRecord
from surefoot.errors import BackPressureError, WorkflowError
from surefoot.observability import tracing
from surefoot.store.sqlite import SQLiteStore

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]


def invoices(app: sf.App) -> Callable[..., str]:
    @app.step(idempotent=True)
    def post(invoice_id: str, cents: int) -> str:
        return f"{invoice_id}:{cents}"

    @app.workflow(queue="invoices")
    def book(ctx: sf.WorkflowContext, invoice_id: str, cents: int = 0) -> str:
        return post(invoice_id, cents)

    return book


def runs(app: sf.App) -> int:
    return app.store.count_runs(RunFilter())


def test_every_run_of_a_batch_is_committed_and_run_by_the_workers(
    make_app: MakeApp, start_worker: StartWorker
) -> None:
    app = make_app()
    book = invoices(app)
    handles = app.start_many(
        book,
        [
            ("INV-1", 100),
            sf.Start(args=("INV-2",), kwargs={"cents": 200}, idempotency_key="INV-2"),
            sf.Start(kwargs={"invoice_id": "INV-3"}, partition_key="acme", priority=5),
        ],
        priority=1,
    )
    records = [app.store.get_run(h.run_id) for h in handles]
    assert [r.priority for r in records if r] == [1, 1, 5]
    assert [r.partition_key for r in records if r] == [None, None, "acme"]
    assert [r.idempotency_key for r in records if r] == [None, "INV-2", None]
    start_worker(app, concurrency=4)
    assert [h.result(timeout=20) for h in handles] == ["INV-1:100", "INV-2:200", "INV-3:0"]
    # The key returns the same run afterwards, from start and from start_many alike.
    assert app.start(book, "INV-2", cents=200, idempotency_key="INV-2").run_id == handles[1].run_id
    again = app.start_many(book, [sf.Start(("INV-2", 200), idempotency_key="INV-2")])
    assert [h.run_id for h in again] == [handles[1].run_id]
    assert runs(app) == 3


def test_an_input_that_cannot_be_encoded_names_its_item_and_stores_none(
    make_app: MakeApp,
) -> None:
    app = make_app()
    book = invoices(app)
    with pytest.raises(sf.SerializationError, match="start_many item 1"):
        app.start_many(book, [("INV-1", 1), ("INV-2", object()), ("INV-3", 3)])
    with pytest.raises(sf.SerializationError, match="start_many item 0"):
        app.start_many(book, [sf.Start(kwargs={"nobody": 1})])
    with pytest.raises(WorkflowError, match=r"item 1: expected a surefoot\.Start"):
        app.start_many(book, [("INV-1", 1), "INV-2"])  # a str is a Sequence, not a call
    assert runs(app) == 0


def test_a_batch_past_the_limit_or_larger_than_a_bounded_queue_is_refused_up_front(
    make_app: MakeApp,
) -> None:
    app = make_app()
    book = invoices(app)
    app.queue("invoices", max_depth=5)
    with pytest.raises(WorkflowError, match="at most 1000 runs per call"):
        app.start_many(book, [(f"INV-{n}", n) for n in range(1001)])
    with pytest.raises(WorkflowError, match="can never fit queue 'invoices'"):
        app.start_many(book, [(f"INV-{n}", n) for n in range(6)])
    assert runs(app) == 0
    assert app.start_many(book, []) == []


def test_a_batch_a_bounded_queue_cannot_take_raises_back_pressure_and_stores_none(
    make_app: MakeApp,
) -> None:
    app = make_app()
    book = invoices(app)
    app.queue("invoices", max_depth=4, retry_after_s=9)
    app.start_many(book, [("INV-1", 1), ("INV-2", 2)])
    with pytest.raises(BackPressureError) as refused:
        app.start_many(book, [("INV-3", 3), ("INV-4", 4), ("INV-5", 5)])
    assert refused.value.retry_after_s == 9
    assert runs(app) == 2
    assert len(app.start_many(book, [("INV-3", 3), ("INV-4", 4)])) == 2


def test_without_a_tracer_each_run_begins_its_own_trace_unless_the_caller_has_one(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's observability tests install a tracer provider for the whole process;
    # here the engine sees none, as in an application that installs none.
    monkeypatch.setattr(tracing, "tracer_provider_installed", lambda: False)
    app = make_app()
    book = invoices(app)

    def trace_ids(handles: list[sf.RunHandle]) -> set[str]:
        found = [app.store.get_run(h.run_id) for h in handles]
        return {r.trace_context.split("-")[1] for r in found if r and r.trace_context}

    alone = app.start_many(book, [("INV-1", 1), ("INV-2", 2), ("INV-3", 3)])
    assert len(trace_ids(alone)) == 3
    assert len(trace_ids([app.start(book, "INV-0", 0), app.start(book, "INV-9", 9)])) == 2
    caller = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    with tracing.ingress({"traceparent": caller}):
        joined = app.start_many(book, [("INV-4", 4), ("INV-5", 5)])
        started = app.start(book, "INV-6", 6)
    assert trace_ids(joined) == {"ab" * 16}
    assert trace_ids([started]) == {"ab" * 16}


class OneCommitPerRun(SQLiteStore):
    """Negative control: a batch committed run by run, as a loop of ``create_run``."""

    def create_runs(
        self,
        news: Sequence[NewRun],
        now: datetime,
        actor: str,
        *,
        queues: Mapping[str, QueueSpec] | None = None,
    ) -> list[tuple[RunRecord, bool]]:
        specs = queues or {}
        return [self.create_run(new, now, actor, queue=specs.get(new.queue)) for new in news]


def test_negative_control_a_batch_committed_run_by_run_leaves_part_of_it_stored(
    tmp_path: Path,
) -> None:
    app = sf.App("control", store=OneCommitPerRun(f"sqlite:///{tmp_path / 'c.db'}"))
    book = invoices(app)
    app.queue("invoices", max_depth=4)
    app.start_many(book, [("INV-1", 1), ("INV-2", 2)])
    with pytest.raises(BackPressureError):
        app.start_many(book, [("INV-3", 3), ("INV-4", 4), ("INV-5", 5)])
    assert runs(app) == 4  # what the all-or-nothing test above asserts is 2
    app.close()
