"""Kill -9 at every named crash point: a committed step never runs again.

Ten runs of a four-step workflow with a durable sleep run on a worker that
SIGKILLs itself at a crash point; a clean worker then finishes them. The
ledger, an external system outside the store, must show exactly one effect per
committed step (and per committed compensation), and no execution of a step
that began after the step was committed.
"""

from __future__ import annotations

import pytest

import surefoot as sf
from surefoot.domain.records import AttemptRecord
from surefoot.domain.status import AttemptKind, AttemptOutcome, RunStatus
from surefoot.ops import audit
from tests.durability.support.checks import exactly_once
from tests.durability.support.ledger import Ledger
from tests.durability.support.procs import (
    FLOWS_APP,
    TAKEOVER_BLIND_APP,
    Processes,
    wait_terminal,
)
from tests.durability.support.scenarios import (
    FAILING,
    RUNS,
    kill_and_recover,
    ledger_output,
    start_ledger_runs,
)

# How many times each point is passed before the worker kills itself: late
# enough that several runs are in flight, early enough that it always happens.
CRASH_AFTER = {
    "step.attempt_committed": 6,
    "step.before_commit": 6,
    "step.after_commit": 6,
    "wait.suspended": 4,
    "run.before_finish": 3,
    "compensation.before_commit": 2,
}


def _attempts(app: sf.App, run_ids: list[str]) -> list[AttemptRecord]:
    return [a for run_id in run_ids for a in app.store.list_attempts(run_id)]


def _ran_in(ledger: Ledger, attempt: AttemptRecord) -> bool:
    return any(e.attempt == attempt.attempt for e in ledger.executions_of(attempt.idempotency_key))


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(CRASH_AFTER))
def test_committed_step_never_runs_twice_after_kill_at(point, app, ledger, processes):
    indexes = start_ledger_runs(app)
    runs = kill_and_recover(processes, app, list(indexes), f"{point}@{CRASH_AFTER[point]}")

    for run_id, run in runs.items():
        index = indexes[run_id]
        if index in FAILING:
            assert run.status is RunStatus.FAILED, run
            dead = app.store.get_dead_letter(run_id)
            assert dead is not None
            assert dead.failure_class is sf.FailureClass.PERMANENT
            assert dead.compensated
        else:
            assert run.status is RunStatus.SUCCEEDED, run.error
            assert app.handle(run_id).result(timeout=1) == ledger_output(index)

    report = exactly_once(app.store, ledger, runs)
    assert report.ok, report.describe()
    assert audit.verify(app) == []  # the hash chain survived the kill intact
    succeeded, failed = RUNS - len(FAILING), len(FAILING)
    assert len(report.committed) == succeeded * 4 + failed * (3 + 3)

    attempts = _attempts(app, list(runs))
    interrupted = [a for a in attempts if a.outcome is AttemptOutcome.INTERRUPTED]
    if point == "step.attempt_committed":
        # The attempt that died before its body ran: reconcile found nothing, one
        # later attempt produced the effect.
        assert any(
            a.kind is AttemptKind.STEP
            and not _ran_in(ledger, a)
            and [e.attempt for e in ledger.executions_of(a.idempotency_key)] == [a.attempt + 1]
            for a in interrupted
        ), interrupted
    elif point == "step.before_commit":
        # The effect happened but was not committed: reconcile found it and
        # recorded it, and the step body never ran again.
        reconciled = [a for a in attempts if a.outcome is AttemptOutcome.RECONCILED]
        assert reconciled
        for attempt in reconciled:
            executions = ledger.executions_of(attempt.idempotency_key)
            assert [e.attempt for e in executions] == [attempt.attempt]
    elif point == "compensation.before_commit":
        # An undo that ran but was not committed runs again under the same key
        # (the external system dedupes it); a committed undo never does.
        # Another run's undo may have been interrupted too, before its body started (the
        # kill hits the whole worker): it ran once, after the takeover.
        undone = [a for a in interrupted if a.kind is AttemptKind.COMPENSATION]
        assert any(_ran_in(ledger, a) for a in undone)  # the undo the kill cut short had run
        for attempt in undone:
            ran = [e.attempt for e in ledger.executions_of(attempt.idempotency_key)]
            assert ran.count(attempt.attempt) <= 1
            assert len([n for n in ran if n > attempt.attempt]) == 1, ran


RECORD_STARTS = {"SUREFOOT_RECORD_IDEMPOTENT_STARTS": "true"}


@pytest.mark.slow
def test_idempotent_step_is_retried_not_reconciled_after_kill_at_step_before_commit(
    app, ledger, processes
):
    # With its starts written first, an idempotent step cut short is recorded interrupted
    # and retried (never reconciled or sent to a person).
    run_ids = [app.start("keyed_flow", index).run_id for index in range(RUNS)]
    runs = kill_and_recover(processes, app, run_ids, "step.before_commit@6", settings=RECORD_STARTS)

    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    report = exactly_once(app.store, ledger, runs)
    assert report.ok, report.describe()

    attempts = _attempts(app, run_ids)
    assert not [a for a in attempts if a.outcome is AttemptOutcome.RECONCILED]
    assert not app.store.list_reviews(None, 100, 0)
    interrupted = [a for a in attempts if a.outcome is AttemptOutcome.INTERRUPTED]
    assert interrupted
    for attempt in interrupted:
        assert attempt.failure_class is sf.FailureClass.TRANSIENT
        assert (attempt.rule, attempt.route) == ("interrupted", "retry")
        retried = [
            a
            for a in attempts
            if a.idempotency_key == attempt.idempotency_key and a.attempt == attempt.attempt + 1
        ]
        assert [a.outcome for a in retried] == [AttemptOutcome.SUCCEEDED]
    # The step that died after its effect ran twice, and the external system kept one effect.
    twice = [a for a in interrupted if _ran_in(ledger, a)]
    assert twice
    for attempt in twice:
        assert len(ledger.executions_of(attempt.idempotency_key)) == 2
        assert (
            sum(n for key, n in ledger.effect_counts().items() if key[2] == attempt.idempotency_key)
            == 1
        )


@pytest.mark.slow
def test_idempotent_step_cut_short_on_first_execution_simply_runs_again(app, ledger, processes):
    # By default an idempotent step's start is committed with its end: a kill before that
    # commit leaves no attempt, and the next worker runs the step again under the same key.
    run_ids = [app.start("keyed_flow", index).run_id for index in range(RUNS)]
    runs = kill_and_recover(processes, app, run_ids, "step.before_commit@6")

    assert {run.status for run in runs.values()} == {RunStatus.SUCCEEDED}
    report = exactly_once(app.store, ledger, runs)
    assert report.ok, report.describe()
    assert audit.verify(app) == []

    attempts = _attempts(app, run_ids)
    assert {a.outcome for a in attempts} == {AttemptOutcome.SUCCEEDED}
    assert not app.store.list_reviews(None, 100, 0)
    by_key: dict[str, list[AttemptRecord]] = {}
    for attempt in attempts:
        by_key.setdefault(attempt.idempotency_key, []).append(attempt)
    twice = [key for key in by_key if len(ledger.executions_of(key)) == 2]
    assert twice  # the step the kill cut short after its effect
    for key in twice:
        assert [a.attempt for a in by_key[key]] == [1]  # one recorded attempt, succeeded
        assert sum(n for k, n in ledger.effect_counts().items() if k[2] == key) == 1
    # Every committed start was audited with its end.
    started = [e for e in audit.entries(app) if e.action == "attempt.started"]
    assert len(started) == len(attempts)


def first_step_after_a_kill_before_the_second(
    app: sf.App, ledger: Ledger, processes: Processes, settings: dict[str, str]
) -> list[int]:
    """One run of one idempotent step called three times; its worker dies as the second
    call's attempt begins (the first has returned). Returns the attempts in which the first
    call ran, by the ledger, once a clean worker has finished the run."""
    run_id = app.start("lines_flow", 0).run_id
    runs = kill_and_recover(processes, app, [run_id], "step.attempt_committed@2", settings=settings)
    assert runs[run_id].status is RunStatus.SUCCEEDED
    report = exactly_once(app.store, ledger, runs)
    assert report.ok, report.describe()
    assert audit.verify(app) == []
    first = [a for a in app.store.list_attempts(run_id) if a.position == 1]
    assert [(a.attempt, a.outcome) for a in first] == [(1, AttemptOutcome.SUCCEEDED)]
    key = f"{run_id}:1"
    assert sum(n for k, n in ledger.effect_counts().items() if k[2] == key) == 1
    return [e.attempt for e in ledger.executions_of(key)]


@pytest.mark.slow
def test_a_quick_steps_held_end_lost_in_a_kill_runs_again_under_the_same_key(
    app, ledger, processes
):
    # The first step was quick, so its end was held past the boundary: the kill took it,
    # and the step ran again (same attempt number and key; the external system kept one
    # effect). Nothing committed ran twice (exactly_once above).
    # A generous quick_step_s: the step writes to the ledger's database, which a loaded
    # machine may make slower than the default 10 ms.
    ran = first_step_after_a_kill_before_the_second(
        app, ledger, processes, {"SUREFOOT_QUICK_STEP_S": "0.5"}
    )
    assert ran == [1, 1]


@pytest.mark.slow
def test_with_quick_step_s_zero_the_first_steps_end_is_committed_before_the_second_runs(
    app, ledger, processes
):
    # The same kill with no end held past a boundary: the first step's end was committed
    # before the second began, so it never ran again. Also the control of the test above:
    # the same check tells the two engines apart.
    ran = first_step_after_a_kill_before_the_second(
        app, ledger, processes, {"SUREFOOT_QUICK_STEP_S": "0"}
    )
    assert ran == [1]


def crash_loop_record(
    app: sf.App,
    ledger: Ledger,
    processes: Processes,
    app_spec: str,
    crashes: tuple[str, ...] = ("step.before_commit@1", "step.before_commit@1"),
    position: int = 1,
) -> list[str]:
    """One run whose idempotent step at ``position`` kills workers in a row (one worker per
    crash point in ``crashes``, then a clean one); what is wrong with what the store then
    shows of that step (nothing: it shows the crash loop as it must)."""
    run_id = app.start("keyed_flow", 0).run_id
    for crash_at in crashes:
        processes.expect_killed(processes.worker(app_spec, crash_at=crash_at))
    clean = processes.worker(app_spec)
    try:
        runs = wait_terminal(app.store, [run_id], timeout_s=20)
    finally:
        code = processes.stop(clean)
    assert code == 0, f"the clean worker exited with {code}\n{clean.tail()}"
    problems = []
    if runs[run_id].status is not RunStatus.SUCCEEDED:
        problems.append(f"run ended {runs[run_id].status}")
    first = [a for a in app.store.list_attempts(run_id) if a.position == position]
    shown = [(a.attempt, a.outcome) for a in first]
    expected = [(1, AttemptOutcome.INTERRUPTED), (2, AttemptOutcome.SUCCEEDED)]
    if shown != expected:
        problems.append(f"attempts {shown}, expected {expected}")
    elif (first[0].rule, first[0].route) != ("interrupted", "retry"):
        problems.append(f"interrupted attempt routed {first[0].rule}/{first[0].route}")
    key = f"{run_id}:{position}"
    ran = [e.attempt for e in ledger.executions_of(key)]
    if ran != [1, 1, 2]:  # unrecorded, interrupted, committed
        problems.append(f"the step ran as attempts {ran}, expected [1, 1, 2]")
    effects = sum(n for k, n in ledger.effect_counts().items() if k[2] == key)
    if effects != 1:
        problems.append(f"{effects} effects kept by the external system, expected 1")
    return problems


# The first step dies once unrecorded; the worker that takes over records it (it may be
# the step the dead worker was in), passes it, and dies in the second step, which it ran
# as an ordinary idempotent step; the next worker's first step run is the second step.
LATER_STEP_CRASHES = ("step.before_commit@1", "step.before_commit@2", "step.before_commit@1")


@pytest.mark.slow
def test_idempotent_step_that_kills_its_worker_again_is_recorded_after_the_takeover(
    app, ledger, processes
):
    # The first kill leaves no record (the start was not written yet); the worker that
    # takes the run over writes starts first, so a second kill in the same step leaves an
    # interrupted attempt, routed like any other: a crash loop is seen and counted.
    assert crash_loop_record(app, ledger, processes, FLOWS_APP) == []


@pytest.mark.slow
def test_crash_loop_check_catches_an_engine_blind_to_takeovers(app, ledger, processes):
    # Negative control: claims that hide the takeover keep the second kill unrecorded.
    problems = crash_loop_record(app, ledger, processes, TAKEOVER_BLIND_APP)
    assert any(p.startswith("attempts ") for p in problems), problems


@pytest.mark.slow
def test_later_step_that_kills_two_workers_is_recorded_from_its_second_kill(app, ledger, processes):
    # Only the first step run after a takeover writes its start first; a later step that
    # then kills the worker is the first one run by the next worker, so its second kill
    # leaves an interrupted attempt just the same: the crash loop is seen, whichever step.
    problems = crash_loop_record(app, ledger, processes, FLOWS_APP, LATER_STEP_CRASHES, 2)
    assert problems == []


@pytest.mark.slow
def test_later_step_crash_loop_check_catches_an_engine_blind_to_takeovers(app, ledger, processes):
    # Negative control: with takeovers hidden, the second step's second kill is unrecorded.
    problems = crash_loop_record(app, ledger, processes, TAKEOVER_BLIND_APP, LATER_STEP_CRASHES, 2)
    assert any(p.startswith("attempts ") for p in problems), problems
