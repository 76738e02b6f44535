"""Only a worker's claims commit without waiting for the disk, on SQLite.

A claim acknowledges nothing outside the store, and only a crash of the machine (which
ends every process that could act on it) can undo a commit that reached the WAL file, so
a batch made only of claims commits with ``synchronous=NORMAL``. Everything else (a start,
a step's start before its effect, a step's result, a run's end) must still wait for the
disk. These tests read every transaction of the store's writing connection, with the
level it committed at; the negative control runs a committer that lets every write skip
the wait, and the same check must catch it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

import surefoot as sf
from surefoot.store.sqlite import SQLiteStore
from surefoot.store.sqlite.group_commit import GroupCommitter

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]

# Statements that record something a caller or the world may rely on: never at NORMAL.
DURABLE_WRITES = (
    "INSERT INTO runs",
    "INSERT INTO attempts",
    "INSERT INTO journal",
    "INSERT INTO review_items",
    "UPDATE attempts",
    "UPDATE journal",
    "UPDATE runs SET status = '",
)
CLAIM = "lease_epoch = lease_epoch + 1"
# How a claim starts looking for runs: a claim that finds none writes nothing more.
CLAIM_LOOKUP = "SELECT MIN(queue) FROM runs WHERE status = 'pending'"


@dataclass
class Transaction:
    level: str
    statements: list[str] = field(default_factory=list)

    @property
    def is_claim(self) -> bool:
        return any(CLAIM in s or s.startswith(CLAIM_LOOKUP) for s in self.statements)

    @property
    def durable_writes(self) -> list[str]:
        return [s for s in self.statements if s.startswith(DURABLE_WRITES)]


def transactions(log: list[str]) -> list[Transaction]:
    """The committed transactions of a connection's statement log, each with the
    ``synchronous`` level in force when it began."""
    level, current, done = "FULL", None, []
    for raw in log:
        sql = " ".join(raw.split())
        upper = sql.upper()
        if upper.startswith("PRAGMA SYNCHRONOUS="):
            level = upper.split("=", 1)[1]
        elif upper.startswith("BEGIN"):
            current = Transaction(level)
        elif upper == "COMMIT" and current is not None:
            done.append(current)
            current = None
        elif upper == "ROLLBACK":
            current = None
        elif current is not None:
            current.statements.append(sql)
    return done


def unflushed(log: list[str]) -> list[Transaction]:
    """Transactions committed without waiting for the disk that were not claims alone."""
    return [
        t for t in transactions(log) if t.level != "FULL" and (not t.is_claim or t.durable_writes)
    ]


@pytest.fixture
def traced(make_app: MakeApp) -> Iterator[tuple[sf.App, list[str]]]:
    app = make_app("claims")

    @app.step(idempotent=True)
    def look_up(value: int) -> int:
        return value + 1

    @app.step
    def post(value: int) -> int:  # not idempotent: its start is committed before it runs
        return value * 2

    @app.workflow
    def flow(ctx: sf.WorkflowContext, value: int) -> int:
        return post(look_up(value))

    store = app.store
    assert isinstance(store, SQLiteStore)
    committer = store._committer
    log: list[str] = []
    committer.submit(lambda cur: None)  # opens the writing connection
    assert committer._conn is not None
    committer._conn.set_trace_callback(log.append)
    yield app, log
    if committer._conn is not None:
        committer._conn.set_trace_callback(None)


def run_three(app: sf.App, start_worker: StartWorker) -> None:
    # Started before the worker, so that its claim is not batched with the starts.
    handles = [app.start("flow", value) for value in range(3)]
    start_worker(app, concurrency=4)
    assert [h.result(timeout=30) for h in handles] == [2, 4, 6]


def test_only_claims_commit_without_waiting_for_the_disk(
    traced: tuple[sf.App, list[str]], start_worker: StartWorker
):
    app, log = traced
    run_three(app, start_worker)

    done = transactions(log)
    assert any(t.is_claim and t.level == "NORMAL" for t in done), done
    assert any(t.durable_writes and t.level == "FULL" for t in done)
    assert unflushed(log) == []


def test_negative_control_a_committer_that_never_waits_is_caught(
    traced: tuple[sf.App, list[str]],
    start_worker: StartWorker,
    monkeypatch: pytest.MonkeyPatch,
):
    app, log = traced
    submit = GroupCommitter.submit

    def never_waits(
        self: GroupCommitter, fn: Callable[..., object], *, flush: bool = True
    ) -> object:
        return submit(self, fn, flush=False)

    monkeypatch.setattr(GroupCommitter, "submit", never_waits)
    run_three(app, start_worker)

    caught = unflushed(log)
    assert caught
    assert any(s.startswith("INSERT INTO journal") for t in caught for s in t.durable_writes)
