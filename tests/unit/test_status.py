"""The run life cycle table: every status reachable, terminal ones final, values as stored."""

from __future__ import annotations

import pytest

from surefoot.domain.status import (
    RUN_TRANSITIONS,
    TERMINAL,
    AttemptOutcome,
    DeadLetterStatus,
    JournalKind,
    JournalStatus,
    ReviewStatus,
    RunStatus,
    can_transition,
)

S = RunStatus


def test_every_status_has_a_row_in_the_transition_table():
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    for targets in RUN_TRANSITIONS.values():
        assert targets <= set(RunStatus)


def test_terminal_statuses_are_exactly_succeeded_failed_cancelled():
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED} == TERMINAL
    assert all(s.is_terminal for s in TERMINAL)
    assert not any(s.is_terminal for s in set(RunStatus) - TERMINAL)


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.CANCELLED])
def test_succeeded_and_cancelled_runs_never_change_again(status):
    assert RUN_TRANSITIONS[status] == frozenset()


def test_a_failed_run_can_only_be_redriven_back_to_pending():
    assert RUN_TRANSITIONS[S.FAILED] == {S.PENDING}


def test_every_status_is_reachable_from_pending():
    seen = {S.PENDING}
    frontier = [S.PENDING]
    while frontier:
        for target in RUN_TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(RunStatus)


def test_every_non_terminal_status_can_reach_an_end():
    for start in set(RunStatus) - TERMINAL:
        seen = {start}
        frontier = [start]
        while frontier:
            for target in RUN_TRANSITIONS[frontier.pop()]:
                if target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert seen & TERMINAL, start


def test_only_a_running_worker_finishes_a_run_successfully():
    assert [s for s in RunStatus if can_transition(s, S.SUCCEEDED)] == [S.RUNNING]


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (S.PENDING, S.RUNNING, True),
        (S.PENDING, S.SUCCEEDED, False),
        (S.WAITING, S.RUNNING, True),
        (S.WAITING, S.SUCCEEDED, False),
        (S.NEEDS_REVIEW, S.PENDING, True),
        (S.NEEDS_REVIEW, S.RUNNING, False),
        (S.COMPENSATING, S.RUNNING, True),
        (S.COMPENSATING, S.SUCCEEDED, False),
        (S.RUNNING, S.COMPENSATING, True),
        (S.FAILED, S.RUNNING, False),
        (S.CANCELLED, S.PENDING, False),
    ],
)
def test_can_transition_follows_the_table(old, new, allowed):
    assert can_transition(old, new) is allowed


def test_cancel_is_possible_from_every_parked_status():
    for status in (S.PENDING, S.RUNNING, S.WAITING, S.NEEDS_REVIEW):
        assert can_transition(status, S.CANCELLED)


def test_stored_values_are_the_lower_case_names():
    for enum in (
        RunStatus,
        AttemptOutcome,
        JournalKind,
        JournalStatus,
        ReviewStatus,
        DeadLetterStatus,
    ):
        for member in enum:
            assert member.value == member.name.lower()
            assert isinstance(member, str)
