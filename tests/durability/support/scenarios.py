"""The kill scenario shared by the crash-point tests and the negative control."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import surefoot as sf
from surefoot.domain.records import RunRecord
from surefoot.domain.status import AttemptOutcome, RunStatus
from tests.durability.support.procs import FLOWS_APP, Processes, wait_terminal, wait_until

RUNS = 10
FAILING = frozenset({3, 7})  # these runs fail at their last step and are compensated
LEDGER_STEPS = ("reserve", "invoice", "ship", "settle")


def start_ledger_runs(app: sf.App) -> dict[str, int]:
    """Start the ledger workflow ``RUNS`` times; returns run id -> index."""
    return {
        app.start("ledger_flow", index, fail=index in FAILING).run_id: index
        for index in range(RUNS)
    }


def ledger_output(index: int) -> list[str]:
    labels = (f"r{index}", f"i{index}", f"s{index}", f"t{index}")
    return [f"ledger.{step}:{label}" for step, label in zip(LEDGER_STEPS, labels, strict=True)]


def kill_and_recover(
    processes: Processes,
    app: sf.App,
    run_ids: list[str],
    crash_at: str,
    *,
    app_spec: str = FLOWS_APP,
    settings: Mapping[str, str] | None = None,
    crash_again_at: str | None = None,
) -> dict[str, RunRecord]:
    """A worker dies at ``crash_at`` (and a second one at ``crash_again_at``); a clean
    worker finishes every run; returns them. ``settings``: environment of every worker."""
    crashing = processes.worker(app_spec, crash_at=crash_at, settings=settings)
    processes.expect_killed(crashing)
    if crash_again_at is not None:
        again = processes.worker(app_spec, crash_at=crash_again_at, settings=settings)
        processes.expect_killed(again)
    clean = processes.worker(app_spec, settings=settings)
    try:
        runs = wait_terminal(app.store, run_ids, timeout_s=20)
    finally:
        code = processes.stop(clean)
    assert code == 0, f"the clean worker exited with {code}\n{clean.tail()}"
    return runs


def wait_inside_a_step(
    app: sf.App, run_ids: list[str], *, timeout_s: float = 20
) -> dict[str, datetime]:
    """Wait until every run is leased and inside a step; returns each lease's expiry."""

    def all_inside_a_step() -> bool:
        for run_id in run_ids:
            run = app.store.get_run(run_id)
            attempts = app.store.list_attempts(run_id)
            if run is None or run.status is not RunStatus.RUNNING or run.lease_owner is None:
                return False
            if not any(a.outcome is AttemptOutcome.RUNNING for a in attempts):
                return False
        return True

    wait_until(all_inside_a_step, timeout_s=timeout_s, what="every run to be inside a step")
    expiries = {}
    for run_id in run_ids:
        run = app.store.get_run(run_id)
        assert run is not None
        assert run.lease_expires_at is not None
        expiries[run_id] = run.lease_expires_at
    return expiries
