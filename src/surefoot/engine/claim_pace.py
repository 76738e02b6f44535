"""How soon a worker claims again after losing the runs it was told of to other workers.

Every worker with room hears of every new run (the stores announce each commit that makes
a run claimable to all of them), and each answers with a claim; one takes the run, and
the others' claims find nothing. With several worker processes and one run started at a
time, most claims are such lost races: each costs its worker and the database a
transaction, and the CPU they take slows the very clients whose starts announce the runs.

A worker whose claim, made in answer to news, found nothing has lost a race. Before its
next claim it waits a little, doubling the wait with each race lost in a row up to a bound,
and claims once for all the news heard meanwhile; a claim that takes a run ends the
streak. A worker that wins keeps claiming at once, so a lone worker, or the one that keeps
winning, answers every start without delay; the others claim less often and take several
runs a claim when they do. A claim made for another reason (a poll, a run of its own that
waits or ends) that finds nothing is not a lost race: an idle worker's polls find nothing
and must not make it slow to answer the next start.
"""

from __future__ import annotations

import threading

FIRST_PAUSE_S = 0.001  # the wait after one lost race; it doubles with each lost in a row
MOST_PAUSE_S = 0.008  # the longest wait before a claim, however many races were lost
_MOST_COUNTED = 16  # lost races counted in a row: far past the longest pause


class ClaimPace:
    """The races a worker has lost in a row, and so how long to wait before its next claim.

    ``heard`` is called from the threads that deliver news of new runs; the rest from the
    worker's claim loop only."""

    def __init__(self, first_s: float = FIRST_PAUSE_S, most_s: float = MOST_PAUSE_S) -> None:
        if not 0 <= first_s <= most_s:
            raise ValueError("the first pause must be at least 0 and at most the longest")
        self._first_s = first_s
        self._most_s = most_s
        self._news = threading.Event()  # news of new runs since the last claim began
        self.lost = 0  # claims in a row that answered news and found nothing

    def heard(self) -> None:
        """News of a new run arrived (another worker may answer it too)."""
        self._news.set()

    def pause_s(self) -> float:
        """How long to wait before the next claim: 0 unless the last races were lost."""
        if not self.lost:
            return 0.0
        return min(self._first_s * float(2 ** (self.lost - 1)), self._most_s)

    def claiming(self) -> bool:
        """A claim begins: whether it answers news (news arriving from now on is news for
        the next claim, which this one may already answer)."""
        answering = self._news.is_set()
        self._news.clear()
        return answering

    def claimed(self, answering: bool, taken: int) -> None:
        """The claim that began with ``answering`` took ``taken`` runs."""
        if taken:
            self.lost = 0
        elif answering:
            self.lost = min(self.lost + 1, _MOST_COUNTED)
