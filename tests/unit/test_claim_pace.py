"""A worker that lost the runs it was told of waits a little before claiming again."""

from __future__ import annotations

import pytest

from surefoot.engine.claim_pace import FIRST_PAUSE_S, MOST_PAUSE_S, ClaimPace


def lose(pace: ClaimPace) -> None:
    """News arrives, the claim answering it finds nothing."""
    pace.heard()
    pace.claimed(pace.claiming(), 0)


def test_a_worker_that_has_lost_no_race_claims_at_once():
    assert ClaimPace().pause_s() == 0.0


def test_the_pause_doubles_with_each_race_lost_in_a_row_up_to_the_bound():
    pace = ClaimPace()
    pauses = []
    for _ in range(6):
        lose(pace)
        pauses.append(pace.pause_s())
    assert pauses == [0.001, 0.002, 0.004, 0.008, 0.008, 0.008]
    assert (FIRST_PAUSE_S, MOST_PAUSE_S) == (0.001, 0.008)


def test_a_claim_that_takes_a_run_ends_the_streak():
    pace = ClaimPace()
    for _ in range(3):
        lose(pace)
    pace.heard()
    pace.claimed(pace.claiming(), 2)
    assert pace.pause_s() == 0.0


def test_a_claim_that_answered_no_news_is_not_a_lost_race():
    # An idle worker's polls find nothing: the next start must still be answered at once.
    pace = ClaimPace()
    for _ in range(5):
        pace.claimed(pace.claiming(), 0)
    assert pace.pause_s() == 0.0


def test_news_heard_while_a_claim_runs_is_answered_by_the_next_one():
    pace = ClaimPace()
    pace.heard()
    answering = pace.claiming()
    pace.heard()  # arrives while that claim runs
    pace.claimed(answering, 0)
    assert pace.claiming() is True
    assert pace.claiming() is False


def test_a_long_losing_streak_stays_at_the_bound():
    pace = ClaimPace()
    for _ in range(10_000):
        lose(pace)
    assert pace.pause_s() == MOST_PAUSE_S


@pytest.mark.parametrize(("first_s", "most_s"), [(-0.001, 0.008), (0.01, 0.008)])
def test_pauses_that_cannot_be_kept_are_refused(first_s: float, most_s: float):
    with pytest.raises(ValueError, match="first pause"):
        ClaimPace(first_s, most_s)
