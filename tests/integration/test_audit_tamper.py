"""The audit log is hash-chained: after real runs and operator actions it verifies clean,
and every kind of tampering with the SQLite file is reported. Broken checkers are shown
to miss the same tampering, so these assertions can fail."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

import surefoot as sf
from surefoot.domain.audit import ChainProblem, entry_hash
from surefoot.ops import audit as audit_ops
from surefoot.ops import dead_letter as dead_letter_ops
from surefoot.ops import review as review_ops
from surefoot.store.sqlite.base import sqlite_path
from tests.integration.support.fault_server import Fault, FaultServer
from tests.integration.support.fixtures import MakeApp, StartWorker
from tests.integration.support.flows import checkout
from tests.integration.support.probes import parked_review

Checker = Callable[[sf.App], list[ChainProblem]]
Tamper = Callable[[sqlite3.Connection], None]


def _seq_of(conn: sqlite3.Connection, action: str) -> int:
    row = conn.execute("SELECT MIN(seq) FROM audit_log WHERE action = ?", (action,)).fetchone()
    assert row[0] is not None, f"no audit entry {action}"
    return int(row[0])


def _last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT MAX(seq) FROM audit_log").fetchone()[0])


def rewrite_a_finished_runs_outcome(conn: sqlite3.Connection) -> None:
    seq = _seq_of(conn, "run.finished")
    conn.execute('UPDATE audit_log SET after = \'{"status":"succeeded"}\' WHERE seq = ?', (seq,))


def rewrite_an_operators_name(conn: sqlite3.Connection) -> None:
    seq = _seq_of(conn, "dead_letter.discarded")
    conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = ?", (seq,))


def rewrite_a_reason(conn: sqlite3.Connection) -> None:
    seq = _seq_of(conn, "dead_letter.discarded")
    conn.execute("UPDATE audit_log SET reason = 'approved by policy' WHERE seq = ?", (seq,))


def rewrite_an_entry_and_its_own_hash(conn: sqlite3.Connection) -> None:
    """An editor who also recomputes the edited entry's hash still breaks the next link."""
    seq = _seq_of(conn, "review.decided")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone()
    after = '{"status":"decided","decision":"approve"}'
    digest = entry_hash(
        row["prev_hash"],
        seq=seq,
        at=row["at"],
        actor="someone-else",
        action=row["action"],
        entity=row["entity"],
        entity_id=row["entity_id"],
        before=None if row["before"] is None else json.loads(row["before"]),
        after=json.loads(after),
        reason=row["reason"],
        correlation_id=row["correlation_id"],
    )
    conn.execute(
        "UPDATE audit_log SET actor = 'someone-else', after = ?, hash = ? WHERE seq = ?",
        (after, digest, seq),
    )


def delete_a_middle_entry(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE seq = ?", (_last_seq(conn) // 2,))


def swap_two_entries(conn: sqlite3.Connection) -> None:
    middle = _last_seq(conn) // 2
    conn.execute("UPDATE audit_log SET seq = -1 WHERE seq = ?", (middle,))
    conn.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (middle, middle + 1))
    conn.execute("UPDATE audit_log SET seq = ? WHERE seq = -1", (middle + 1,))


def delete_the_last_entries(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM audit_log WHERE seq > ?", (_last_seq(conn) - 3,))


TAMPERS: list[Tamper] = [
    rewrite_a_finished_runs_outcome,
    rewrite_an_operators_name,
    rewrite_a_reason,
    rewrite_an_entry_and_its_own_hash,
    delete_a_middle_entry,
    swap_two_entries,
    delete_the_last_entries,
]
CONTENT_EDITS = TAMPERS[:3]


def verify_nothing(app: sf.App) -> list[ChainProblem]:
    """A deliberately broken checker: it reads nothing and reports nothing."""
    return []


def verify_links_only(app: sf.App) -> list[ChainProblem]:
    """A deliberately weak checker: it follows seq and prev_hash links but never
    recomputes an entry's hash, so it cannot see an edited entry."""
    problems: list[ChainProblem] = []
    previous = None
    for entry in audit_ops.entries(app):
        if previous is not None and (
            entry.seq != previous.seq + 1 or entry.prev_hash != previous.hash
        ):
            problems.append(ChainProblem(entry.seq, "broken link"))
        previous = entry
    return problems


@pytest.fixture
def audited_store(
    server: FaultServer, make_app: MakeApp, start_worker: StartWorker, store_url: str
) -> Path:
    """A store whose audit log holds runs, a review decision, a dead-letter and a discard."""
    server.fail_always("payments", Fault.http(503))
    app = make_app()
    flow = checkout(app, server.url, charge_options={"retry": sf.Retry(max_attempts=2)})

    @app.step(name="gate")
    def gate(amount: int) -> int:
        sf.require_approval("over-limit", when=amount > 10)
        return amount

    @app.workflow(name="approve")
    def approve(ctx: sf.WorkflowContext, amount: int) -> int:
        return gate(amount)

    start_worker(app)
    failed = flow.start("o-1")
    with pytest.raises(sf.RunFailedError):
        failed.result(timeout=10)
    dead_letter_ops.discard(app, failed.run_id, actor="operator", reason="customer withdrew")
    approved = app.start(approve, 50)
    item = parked_review(app, approved.run_id)
    review_ops.decide(app, item.item_id, "approve", actor="approver")
    approved.result(timeout=10)
    assert audit_ops.verify(app) == []
    return sqlite_path(store_url)


def _copy(source: Path, target: Path, tamper: Tamper | None) -> Path:
    with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(target)) as copy:
        live.backup(copy)
        if tamper is not None:
            with copy:  # one transaction, committed
                tamper(copy)
    return target


def _problems(make_app: MakeApp, path: Path, checker: Checker) -> list[ChainProblem]:
    app = make_app(store=f"sqlite:///{path}")
    return checker(app)


def test_an_untampered_copy_of_the_store_verifies_clean(
    audited_store: Path, make_app: MakeApp, tmp_path
):
    copy = _copy(audited_store, tmp_path / "copy.db", None)
    assert _problems(make_app, copy, audit_ops.verify) == []
    assert len(list(audit_ops.entries(make_app(store=f"sqlite:///{copy}")))) > 20


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda t: t.__name__)
def test_every_tampering_is_reported(
    audited_store: Path, make_app: MakeApp, tmp_path, tamper: Tamper
):
    copy = _copy(audited_store, tmp_path / "tampered.db", tamper)
    assert _problems(make_app, copy, audit_ops.verify) != []


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda t: t.__name__)
def test_a_checker_that_verifies_nothing_misses_the_same_tampering(
    audited_store: Path, make_app: MakeApp, tmp_path, tamper: Tamper
):
    copy = _copy(audited_store, tmp_path / "tampered.db", tamper)
    assert _problems(make_app, copy, verify_nothing) == []


@pytest.mark.parametrize("tamper", CONTENT_EDITS, ids=lambda t: t.__name__)
def test_a_checker_that_only_follows_links_misses_edited_content(
    audited_store: Path, make_app: MakeApp, tmp_path, tamper: Tamper
):
    copy = _copy(audited_store, tmp_path / "tampered.db", tamper)
    assert _problems(make_app, copy, verify_links_only) == []
    assert _problems(make_app, copy, audit_ops.verify) != []


def test_a_tampered_entry_is_reported_at_its_position(
    audited_store: Path, make_app: MakeApp, tmp_path
):
    copy = _copy(audited_store, tmp_path / "tampered.db", rewrite_an_operators_name)
    with closing(sqlite3.connect(copy)) as conn:
        seq = _seq_of(conn, "dead_letter.discarded")
    problems = _problems(make_app, copy, audit_ops.verify)
    assert [p.seq for p in problems] == [seq]
    assert "modified" in problems[0].problem
