"""Refused events and operator actions: a typed error, and not one row written."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from typing import Any

import pytest

import surefoot as sf
from surefoot.errors import (
    InvalidDecisionError,
    InvalidTransitionError,
    ReviewItemNotFoundError,
    RunAlreadyFinishedError,
    RunNotFoundError,
)
from surefoot.ops import dead_letter, review, runs


def snapshot(store_url: str) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def wait_status(handle: sf.RunHandle, status: sf.RunStatus, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() is not status:
        assert time.monotonic() < deadline, f"run is {handle.status()}, expected {status}"
        time.sleep(0.01)


@pytest.fixture
def parked(make_app, start_worker, store_url):
    """One finished run, one run parked on a data review item; workers stopped."""
    app: sf.App = make_app()

    @app.step
    def validate(invoice: dict[str, Any]) -> dict[str, Any]:
        if not invoice.get("vendor"):
            raise sf.DataError("vendor is missing", errors=["vendor is missing"])
        return invoice

    @app.workflow
    def check(ctx: sf.WorkflowContext, invoice: dict[str, Any]) -> dict[str, Any]:
        return validate(invoice)

    worker = start_worker(app)
    finished = app.start(check, {"vendor": "ACME"})
    assert finished.result(timeout=10) == {"vendor": "ACME"}
    waiting = app.start(check, {"vendor": ""})
    wait_status(waiting, sf.RunStatus.NEEDS_REVIEW)
    worker.stop(timeout=10)
    (item,) = review.list_reviews(app)
    return app, finished, waiting, item, snapshot(store_url)


def test_event_for_a_finished_run_is_refused_and_not_stored(parked, store_url):
    app, finished, _waiting, _item, rows = parked
    with pytest.raises(RunAlreadyFinishedError, match=r"succeeded; the event 'go' was not stored"):
        app.send_event(finished.run_id, "go", {"n": 1})
    assert snapshot(store_url) == rows


def test_event_for_an_unknown_run_is_run_not_found(parked, store_url):
    app, *_rest, rows = parked
    with pytest.raises(RunNotFoundError, match="no-such-run"):
        app.send_event("no-such-run", "go")
    assert snapshot(store_url) == rows


def test_event_with_a_non_json_payload_is_refused_before_anything_is_written(parked, store_url):
    app, _finished, waiting, _item, rows = parked
    with pytest.raises(sf.SerializationError, match="event payload"):
        app.send_event(waiting.run_id, "go", {"callback": object()})
    assert snapshot(store_url) == rows


def test_decision_with_an_action_the_item_does_not_allow_writes_nothing(parked, store_url):
    app, _finished, waiting, item, rows = parked
    assert item.actions == ("retry", "skip", "abort")
    with pytest.raises(InvalidDecisionError, match=r"'approve' is not an action.*retry, skip"):
        review.decide(app, item.item_id, "approve", actor="reviewer")
    assert snapshot(store_url) == rows
    assert review.get_review(app, item.item_id).status.value == "open"
    assert waiting.status() is sf.RunStatus.NEEDS_REVIEW


def test_skip_without_a_value_is_refused_and_writes_nothing(parked, store_url):
    app, _finished, _waiting, item, rows = parked
    with pytest.raises(InvalidDecisionError, match="'skip' needs --value"):
        review.decide(app, item.item_id, "skip", actor="reviewer")
    assert snapshot(store_url) == rows


@pytest.mark.parametrize(
    ("action", "inputs"),
    [("abort", {"invoice": {"vendor": "X"}}), ("retry", ["not", "an", "object"])],
)
def test_edited_inputs_outside_a_retry_or_not_an_object_are_refused(
    parked, store_url, action, inputs
):
    app, _finished, _waiting, item, rows = parked
    with pytest.raises(InvalidDecisionError, match="inputs"):
        review.decide(app, item.item_id, action, actor="reviewer", inputs=inputs)
    assert snapshot(store_url) == rows


def test_decision_for_an_unknown_item_is_review_item_not_found(parked, store_url):
    app, *_rest, rows = parked
    with pytest.raises(ReviewItemNotFoundError, match="nope"):
        review.decide(app, "nope", "retry", actor="reviewer")
    assert snapshot(store_url) == rows


def test_second_decision_on_a_decided_item_is_refused_and_the_first_stands(parked, store_url):
    app, _finished, _waiting, item, _rows = parked
    first = review.decide(app, item.item_id, "skip", actor="approver-1", value={"vendor": "ACME"})
    rows = snapshot(store_url)
    with pytest.raises(InvalidTransitionError, match="not open"):
        review.decide(app, item.item_id, "abort", actor="intruder")
    assert snapshot(store_url) == rows
    assert review.get_review(app, item.item_id) == first


def test_cancelling_a_finished_run_is_refused(parked, store_url):
    app, finished, *_rest, rows = parked
    with pytest.raises(InvalidTransitionError, match="already succeeded"):
        runs.cancel_run(app, finished.run_id, actor="ops", reason="too late")
    assert snapshot(store_url) == rows


def test_redriving_a_run_that_is_not_dead_lettered_is_refused(parked, store_url):
    app, finished, *_rest, rows = parked
    with pytest.raises(InvalidTransitionError, match="not in the dead-letter queue"):
        dead_letter.redrive(app, finished.run_id, actor="ops")
    with pytest.raises(RunNotFoundError):
        dead_letter.redrive(app, "no-such-run", actor="ops")
    assert snapshot(store_url) == rows


def test_discarding_without_a_reason_is_refused(parked, store_url):
    app, finished, *_rest, rows = parked
    with pytest.raises(InvalidTransitionError, match="needs a reason"):
        dead_letter.discard(app, finished.run_id, actor="ops", reason="  ")
    assert snapshot(store_url) == rows
