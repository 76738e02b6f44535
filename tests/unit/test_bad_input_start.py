"""Bad input to start(): a precise typed error, no run row created, committed runs intact."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

import surefoot as sf
from surefoot.domain.records import RunRecord


def snapshot(store_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a refused call wrote nothing."""
    with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


@dataclass
class Committed:
    app: sf.App
    quote: Any
    handle: sf.RunHandle
    record: RunRecord
    rows: dict[str, list[tuple[Any, ...]]]


@pytest.fixture
def committed(make_app, start_worker, store_url) -> Committed:
    """An app with one run already completed, and the store's rows at that moment."""
    app: sf.App = make_app()

    @app.step
    def price(amount: Decimal) -> Decimal:
        return amount * 2

    @app.workflow
    def quote(ctx: sf.WorkflowContext, amount: Decimal, note: Any = None) -> Decimal:
        return price(amount)

    worker = start_worker(app)
    handle = app.start(quote, Decimal("10.25"), idempotency_key="quote-1")
    assert handle.result(timeout=10) == Decimal("20.50")
    worker.stop(timeout=10)
    return Committed(app, quote, handle, handle.record(), snapshot(store_url))


def assert_untouched(committed: Committed, store_url: str) -> None:
    """Nothing was written, and the committed run reads back identical."""
    assert snapshot(store_url) == committed.rows
    assert committed.handle.record() == committed.record
    assert committed.handle.result(timeout=1) == Decimal("20.50")


def test_unknown_workflow_name_is_workflow_not_found_and_lists_known_ones(
    committed: Committed, store_url
):
    app = committed.app
    with pytest.raises(sf.WorkflowNotFoundError, match=r"no workflow named 'nope'.*known: quote"):
        app.start("nope")
    assert_untouched(committed, store_url)


def test_unknown_workflow_name_from_json_is_workflow_not_found(committed: Committed, store_url):
    app = committed.app
    with pytest.raises(sf.WorkflowNotFoundError, match="'nope'"):
        app.start_json("nope", {"amount": "1"})
    assert_untouched(committed, store_url)


def test_function_that_is_not_a_declared_workflow_is_refused(committed: Committed, store_url):
    app = committed.app

    def not_declared(ctx: sf.WorkflowContext) -> None: ...

    with pytest.raises(sf.WorkflowNotFoundError, match=r"declare it with @app\.workflow"):
        app.start(not_declared)
    assert_untouched(committed, store_url)


def test_workflow_of_another_app_is_refused(committed: Committed, make_app, store_url):
    app = committed.app
    other: sf.App = make_app("other")

    @other.workflow
    def elsewhere(ctx: sf.WorkflowContext) -> None: ...

    with pytest.raises(sf.WorkflowNotFoundError):
        app.start(elsewhere)
    assert_untouched(committed, store_url)


@pytest.mark.parametrize("value", [object(), {"when": lambda: None}, [1, {2, object()}]])
def test_non_json_input_is_serialization_error_and_creates_no_run(
    committed: Committed, store_url, value
):
    app, quote = committed.app, committed.quote
    with pytest.raises(sf.SerializationError, match="argument 'note'"):
        app.start(quote, Decimal("1"), note=value)
    assert len(snapshot(store_url)["runs"]) == 1
    assert_untouched(committed, store_url)


def test_input_that_does_not_match_its_annotation_is_serialization_error(
    committed: Committed, store_url
):
    app, quote = committed.app, committed.quote
    with pytest.raises(sf.SerializationError, match="argument 'amount'"):
        app.start(quote, "ten euros")
    assert_untouched(committed, store_url)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((Decimal("1"), None, "extra"), {}),
        ((Decimal("1"),), {"colour": "red"}),
        ((Decimal("1"),), {"amount": Decimal("2")}),
    ],
)
def test_arguments_that_do_not_fit_the_signature_are_refused(
    committed: Committed, store_url, args, kwargs
):
    app, quote = committed.app, committed.quote
    with pytest.raises(sf.SerializationError, match="do not fit"):
        app.start(quote, *args, **kwargs)
    assert_untouched(committed, store_url)


@pytest.mark.parametrize(
    "inputs",
    [{"amount": "1", "colour": "red"}, ["1", None, "extra"], {}, {"amount": "x"}],
)
def test_json_inputs_that_do_not_fit_are_refused(committed: Committed, store_url, inputs):
    app = committed.app
    with pytest.raises(sf.SerializationError):
        app.start_json("quote", inputs)
    assert_untouched(committed, store_url)


@pytest.mark.parametrize("inputs", ["1", 1, True])
def test_json_inputs_that_are_neither_list_nor_object_are_refused(
    committed: Committed, store_url, inputs
):
    app = committed.app
    with pytest.raises(sf.errors.WorkflowError, match="JSON list or object"):
        app.start_json("quote", inputs)
    assert_untouched(committed, store_url)


def test_same_idempotency_key_with_other_inputs_is_a_conflict(committed: Committed, store_url):
    app, quote, handle = committed.app, committed.quote, committed.handle
    with pytest.raises(sf.IdempotencyKeyConflictError, match=handle.run_id):
        app.start(quote, Decimal("99"), idempotency_key="quote-1")
    assert_untouched(committed, store_url)


def test_same_idempotency_key_for_another_workflow_is_a_conflict(committed: Committed, store_url):
    app = committed.app

    @app.workflow
    def other(ctx: sf.WorkflowContext, amount: Decimal) -> None: ...

    with pytest.raises(sf.IdempotencyKeyConflictError):
        app.start(other, Decimal("10.25"), idempotency_key="quote-1")
    assert_untouched(committed, store_url)


def test_same_idempotency_key_with_same_inputs_returns_the_committed_run(
    committed: Committed, store_url
):
    app, quote, handle = committed.app, committed.quote, committed.handle
    again = app.start(quote, Decimal("10.25"), idempotency_key="quote-1")
    assert again.run_id == handle.run_id
    assert_untouched(committed, store_url)
