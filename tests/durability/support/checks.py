"""The exactly-once checker: compare what the store committed with what the ledger saw.

The same function judges the real durability tests and the negative control, so a
checker that could not see a duplicate would fail the control instead of passing
everything quietly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from surefoot.domain.status import AttemptKind, AttemptOutcome, JournalKind, JournalStatus
from surefoot.store.base import Store
from tests.durability.support.ledger import Execution, Ledger

Key = tuple[str, str, str]  # run id, step name, idempotency key

_COMMITTING = (AttemptOutcome.SUCCEEDED, AttemptOutcome.RECONCILED)


@dataclass(frozen=True)
class Committed:
    """A step result or compensation the store committed, and when it first did."""

    key: Key
    committed_at: float


@dataclass
class EffectReport:
    committed: list[Committed] = field(default_factory=list)
    duplicates: dict[Key, int] = field(default_factory=dict)  # more than one effect
    missing: list[Key] = field(default_factory=list)  # committed, but no effect
    orphans: dict[Key, int] = field(default_factory=dict)  # an effect nothing committed
    reruns: list[Execution] = field(default_factory=list)  # began after the commit

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.missing or self.orphans or self.reruns)

    def describe(self) -> str:
        return (
            f"{len(self.committed)} committed; duplicates={self.duplicates} "
            f"missing={self.missing} orphans={self.orphans} "
            f"reruns={[(e.step, e.idempotency_key, e.attempt) for e in self.reruns]}"
        )


def committed_in_store(store: Store, run_ids: Iterable[str]) -> list[Committed]:
    """Committed steps (from the journal) and committed compensations (from attempts)."""
    found: list[Committed] = []
    for run_id in run_ids:
        attempts = store.list_attempts(run_id)
        for entry in store.list_journal(run_id):
            if entry.kind is not JournalKind.STEP or entry.status is not JournalStatus.COMMITTED:
                continue
            at = [
                a for a in attempts if a.kind is AttemptKind.STEP and a.position == entry.position
            ]
            key = at[-1].idempotency_key if at else ""
            times = [a.finished_at for a in at if a.outcome in _COMMITTING and a.finished_at]
            times += [entry.committed_at] if entry.committed_at else []
            found.append(Committed((run_id, entry.name, key), min(t.timestamp() for t in times)))
        seen: set[str] = set()
        for attempt in attempts:
            if (
                attempt.kind is AttemptKind.COMPENSATION
                and attempt.outcome is AttemptOutcome.SUCCEEDED
                and attempt.finished_at is not None
                and attempt.idempotency_key not in seen
            ):
                seen.add(attempt.idempotency_key)
                undo = (run_id, attempt.step, attempt.idempotency_key)
                found.append(Committed(undo, attempt.finished_at.timestamp()))
    return found


def exactly_once(store: Store, ledger: Ledger, run_ids: Iterable[str]) -> EffectReport:
    """Every committed step and compensation had exactly one effect, and none ran again
    after it was committed; no effect exists that nothing committed."""
    ids = set(run_ids)
    report = EffectReport(committed=committed_in_store(store, sorted(ids)))
    effects = {k: n for k, n in ledger.effect_counts().items() if k[0] in ids}
    commit_times = {c.key: c.committed_at for c in report.committed}
    for key in commit_times:
        count = effects.get(key, 0)
        if count == 0:
            report.missing.append(key)
        elif count > 1:
            report.duplicates[key] = count
    report.orphans = {k: n for k, n in effects.items() if k not in commit_times}
    for execution in ledger.executions():
        key = (execution.run_id, execution.step, execution.idempotency_key)
        if key in commit_times and execution.started_at > commit_times[key]:
            report.reruns.append(execution)
    return report
