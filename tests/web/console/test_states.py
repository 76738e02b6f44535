"""The console never shows retrying, parked or stalled work as merely running or waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from surefoot.domain.records import RunRecord
from surefoot.domain.status import RunStatus
from surefoot.web.console.states import ago, run_state, short_error, without_tracebacks

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _run(status: RunStatus, **fields: Any) -> RunRecord:
    return RunRecord(
        run_id="r1",
        workflow="wf",
        queue="q",
        status=status,
        inputs="[]",
        inputs_hash="h",
        created_at=NOW - timedelta(minutes=5),
        updated_at=NOW - timedelta(minutes=1),
        **fields,
    )


@pytest.mark.parametrize(
    ("run", "label", "attention"),
    [
        (
            _run(RunStatus.WAITING, wait_reason="retry:post", wake_at=NOW),
            "retrying",
            "retrying",
        ),
        (_run(RunStatus.WAITING, wait_reason="breaker:bank"), "breaker open", "breaker open"),
        (_run(RunStatus.WAITING, wait_reason="sleep", wake_at=NOW), "sleeping", None),
        (_run(RunStatus.WAITING, wait_reason="event:paid"), "waiting for event", None),
        (_run(RunStatus.NEEDS_REVIEW, wait_reason="review:abc"), "needs review", "needs_review"),
        (_run(RunStatus.COMPENSATING), "compensating", "compensating"),
        (
            _run(
                RunStatus.RUNNING,
                lease_owner="w1",
                lease_expires_at=NOW - timedelta(seconds=40),
            ),
            "stalled",
            "stalled",
        ),
        (
            _run(RunStatus.RUNNING, lease_owner="w1", lease_expires_at=NOW + timedelta(seconds=9)),
            "running",
            None,
        ),
        (_run(RunStatus.FAILED, error='{"type": "x.Boom", "message": "no"}'), "failed", "failed"),
        (_run(RunStatus.SUCCEEDED), "succeeded", None),
    ],
)
def test_each_run_is_named_for_what_it_is_doing(
    run: RunRecord, label: str, attention: str | None
) -> None:
    state = run_state(run, NOW)
    assert state.label == label
    assert state.attention == attention


def test_a_stalled_run_says_whose_lease_expired_and_when() -> None:
    run = _run(RunStatus.RUNNING, lease_owner="host-7", lease_expires_at=NOW - timedelta(minutes=3))
    assert "lease of host-7 expired 3m ago" in run_state(run, NOW).detail


def test_errors_are_shown_as_one_line_without_their_stack() -> None:
    stored = (
        '{"type": "httpx.HTTPStatusError", "message": "Server error 503\\nFor more", '
        '"http_status": 503, "traceback": "Traceback (most recent call last): ..."}'
    )
    assert short_error(stored) == "HTTPStatusError: Server error 503"
    cleaned, stacks = without_tracebacks({"error": {"traceback": "T", "message": "m"}})
    assert cleaned == {"error": {"message": "m"}}
    assert stacks == ["T"]


def test_ages_are_compact() -> None:
    assert ago(NOW - timedelta(seconds=42), NOW) == "42s"
    assert ago(NOW - timedelta(minutes=90), NOW) == "1h"
    assert ago(NOW - timedelta(days=3), NOW) == "3d"
