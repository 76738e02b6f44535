"""A step whose worker died mid-attempt: recorded as interrupted, and then either
retried (idempotent), or handed to a person (non-idempotent, nothing to reconcile)."""

from __future__ import annotations

import json

import pytest

import surefoot as sf
from surefoot.domain.status import AttemptKind, AttemptOutcome, ReviewStatus, RunStatus
from surefoot.ops import review
from tests.durability.support.checks import exactly_once
from tests.durability.support.procs import FLOWS_APP, wait_terminal, wait_until
from tests.durability.support.scenarios import kill_and_recover


@pytest.mark.slow
def test_interrupted_attempt_is_recorded_and_an_idempotent_step_gets_a_later_attempt(
    app, ledger, processes
):
    # Idempotent steps' starts are written before they run here, as for any step (by
    # default they are written with their ends; see test_crash_points).
    record_starts = {"SUREFOOT_RECORD_IDEMPOTENT_STARTS": "true"}
    run_id = app.start("keyed_flow", 0).run_id
    crashing = processes.worker(crash_at="step.attempt_committed@1", settings=record_starts)
    processes.expect_killed(crashing)
    clean = processes.worker(settings=record_starts)
    runs = wait_terminal(app.store, [run_id])
    assert processes.stop(clean) == 0
    assert runs[run_id].status is RunStatus.SUCCEEDED

    first = [a for a in app.store.list_attempts(run_id) if a.position == 1]
    assert [a.outcome for a in first] == [AttemptOutcome.INTERRUPTED, AttemptOutcome.SUCCEEDED]
    interrupted, later = first
    assert interrupted.idempotency_key == later.idempotency_key
    assert interrupted.worker_id != later.worker_id
    assert "surefoot.Interrupted" in (interrupted.error or "")
    # The body never ran in the attempt that died before it; it ran once, later.
    assert [e.attempt for e in ledger.executions_of(later.idempotency_key)] == [later.attempt]
    audited = [e.action for e in app.store.audit_entries(after_seq=0, limit=1000, entity_id=run_id)]
    assert "attempt.interrupted" in audited

    # Operators see the same through the CLI.
    shown = json.loads(processes.cli("runs", "show", FLOWS_APP, run_id, "--json"))
    outcomes = [a["outcome"] for a in shown["attempts"] if a["position"] == 1]
    assert outcomes == ["interrupted", "succeeded"]


@pytest.mark.slow
def test_non_idempotent_step_without_reconcile_is_not_rerun_after_kill(
    app, ledger, processes, start_worker
):
    handle = app.start("blind_flow", 0)
    crashing = processes.worker(crash_at="step.before_commit@1")
    processes.expect_killed(crashing)
    start_worker(app)

    wait_until(
        lambda: handle.status() is RunStatus.NEEDS_REVIEW,
        timeout_s=10,
        what="the run to wait for a person",
    )
    items = [
        i for i in app.store.list_reviews(ReviewStatus.OPEN, 100, 0) if i.run_id == handle.run_id
    ]
    assert len(items) == 1
    item = items[0]
    assert item.kind == "ambiguous"
    assert item.actions == ("happened", "retry", "abort")
    assert review.payload(item)["step"] == "blind.charge"

    attempts = [a for a in app.store.list_attempts(handle.run_id) if a.kind is AttemptKind.STEP]
    assert [(a.position, a.outcome) for a in attempts] == [(1, AttemptOutcome.INTERRUPTED)]
    key = attempts[0].idempotency_key
    assert len(ledger.executions_of(key)) == 1
    effect = ledger.find(key)
    assert effect == "blind.charge:c0"

    review.decide(app, item.item_id, "happened", actor="t", value=effect)
    assert handle.result(timeout=10) == [effect, "blind.receipt:r0"]
    assert len(ledger.executions_of(key)) == 1
    report = exactly_once(app.store, ledger, [handle.run_id])
    assert report.ok, report.describe()


def _retry_suspensions(app: sf.App, run_id: str) -> list[str]:
    """The retry waits recorded for a run: one per retry that was scheduled for later."""
    return [
        (entry.after or {}).get("wait_reason", "")
        for entry in app.store.audit_entries(after_seq=0, limit=1000, entity_id=run_id)
        if entry.action == "run.suspended"
        and str((entry.after or {}).get("wait_reason", "")).startswith("retry:")
    ]


# Real backoff: the retry delays of the default policy apply (not the tests' instant ones).
_BACKOFF = {"SUREFOOT_RECORD_IDEMPOTENT_STARTS": "true", "SUREFOOT_INSTANT_RETRIES": "0"}


@pytest.mark.slow
def test_first_retry_after_an_interruption_runs_at_once(app, ledger, processes):
    # A worker that died says nothing about the step's dependency: the worker that takes
    # the run over retries the interrupted step at once instead of waiting out a backoff.
    run_id = app.start("keyed_flow", 0).run_id
    runs = kill_and_recover(processes, app, [run_id], "step.attempt_committed@1", settings=_BACKOFF)
    assert runs[run_id].status is RunStatus.SUCCEEDED
    first = [a for a in app.store.list_attempts(run_id) if a.position == 1]
    assert [a.outcome for a in first] == [AttemptOutcome.INTERRUPTED, AttemptOutcome.SUCCEEDED]
    assert (first[0].rule, first[0].route) == ("interrupted", "retry")
    assert _retry_suspensions(app, run_id) == []
    report = exactly_once(app.store, ledger, runs)
    assert report.ok, report.describe()


@pytest.mark.slow
def test_step_interrupted_twice_in_a_row_backs_off(app, ledger, processes):
    # The other side of the rule above, and the check that it can see a wait: a step that
    # keeps killing its workers is retried with the policy's backoff from the second
    # interruption on, and stays bounded by max_attempts.
    run_id = app.start("keyed_flow", 0).run_id
    runs = kill_and_recover(
        processes,
        app,
        [run_id],
        "step.attempt_committed@1",
        crash_again_at="step.attempt_committed@1",
        settings=_BACKOFF,
    )
    assert runs[run_id].status is RunStatus.SUCCEEDED
    first = [a for a in app.store.list_attempts(run_id) if a.position == 1]
    assert [a.outcome for a in first] == [
        AttemptOutcome.INTERRUPTED,
        AttemptOutcome.INTERRUPTED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert _retry_suspensions(app, run_id) == [f"retry:{first[0].step}"]
    report = exactly_once(app.store, ledger, runs)
    assert report.ok, report.describe()
