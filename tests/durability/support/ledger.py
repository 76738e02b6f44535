"""The external system the durability tests watch: a SQLite file outside the store.

Every execution of a step body (or compensation hook) appends a row to
``executions``. What the external system keeps is in ``effects``: a
non-idempotent system keeps one effect per request, an idempotent one keeps the
first request per idempotency key and answers repeats with it. Both tables are
keyed by run id, step name and the idempotency key the step was given, so a
checker can compare them with what the store committed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import surefoot as sf

LEDGER_ENV = "DURABILITY_LEDGER"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS executions (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " run_id TEXT NOT NULL, step TEXT NOT NULL, idempotency_key TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, pid INTEGER NOT NULL, started_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS effects (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " run_id TEXT NOT NULL, step TEXT NOT NULL, idempotency_key TEXT NOT NULL,"
    " value TEXT NOT NULL)",
)


@dataclass(frozen=True)
class Execution:
    run_id: str
    step: str
    idempotency_key: str
    attempt: int
    pid: int
    started_at: float


class Ledger:
    """One ledger file, safe to use from many threads and processes at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._transaction() as cur:
            for statement in _SCHEMA:
                cur.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as conn:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # -- what steps do ------------------------------------------------------------------------
    def apply(self, value: str, *, idempotent: bool) -> str:
        """Record this execution and perform the effect; returns the effect's value.

        Called from a step body or a compensation hook: the step context names the
        run, the step and the idempotency key.
        """
        step = sf.current_step()
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO executions (run_id, step, idempotency_key, attempt, pid, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    step.run_id,
                    step.step,
                    step.idempotency_key,
                    step.attempt,
                    os.getpid(),
                    time.time(),
                ),
            )
            if idempotent:
                existing = cur.execute(
                    "SELECT value FROM effects WHERE idempotency_key = ? ORDER BY seq LIMIT 1",
                    (step.idempotency_key,),
                ).fetchone()
                if existing is not None:
                    return str(existing[0])
            cur.execute(
                "INSERT INTO effects (run_id, step, idempotency_key, value) VALUES (?, ?, ?, ?)",
                (step.run_id, step.step, step.idempotency_key, value),
            )
        return value

    def find(self, idempotency_key: str) -> str | None:
        """The effect recorded under this key, as a reconcile hook looks it up."""
        with self._transaction() as cur:
            row = cur.execute(
                "SELECT value FROM effects WHERE idempotency_key = ? ORDER BY seq LIMIT 1",
                (idempotency_key,),
            ).fetchone()
        return None if row is None else str(row[0])

    # -- what checkers read ---------------------------------------------------------------------
    def effect_counts(self) -> Counter[tuple[str, str, str]]:
        """Effects per (run id, step, idempotency key)."""
        with self._transaction() as cur:
            rows = cur.execute("SELECT run_id, step, idempotency_key FROM effects").fetchall()
        return Counter((str(r[0]), str(r[1]), str(r[2])) for r in rows)

    def executions(self) -> list[Execution]:
        with self._transaction() as cur:
            rows = cur.execute(
                "SELECT run_id, step, idempotency_key, attempt, pid, started_at"
                " FROM executions ORDER BY seq"
            ).fetchall()
        return [
            Execution(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), r[5]) for r in rows
        ]

    def executions_of(self, idempotency_key: str) -> list[Execution]:
        return [e for e in self.executions() if e.idempotency_key == idempotency_key]
