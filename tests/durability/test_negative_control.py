"""The negative control: a store that forgets committed results must be caught.

The same kill scenario and the same exactly-once checker as the crash-point
tests, run against a deliberately broken store whose replay never sees the
committed step results. If the checker reported nothing here, a green run of
the real tests would prove nothing.
"""

from __future__ import annotations

import pytest

from tests.durability.support.checks import exactly_once
from tests.durability.support.procs import FORGETFUL_APP
from tests.durability.support.scenarios import kill_and_recover, start_ledger_runs


@pytest.mark.slow
def test_exactly_once_checker_reports_duplicates_of_a_store_that_forgets_results(
    app, ledger, processes
):
    indexes = start_ledger_runs(app)
    runs = kill_and_recover(
        processes, app, list(indexes), "step.after_commit@6", app_spec=FORGETFUL_APP
    )

    report = exactly_once(app.store, ledger, runs)
    assert not report.ok
    assert report.duplicates, report.describe()
    assert report.reruns, report.describe()
    # Replay after the durable sleep re-ran the two steps committed before it.
    rerun_steps = {step for (_run, step, _key) in report.duplicates}
    assert rerun_steps >= {"ledger.reserve", "ledger.invoice"}
