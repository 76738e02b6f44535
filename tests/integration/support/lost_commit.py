"""A PostgreSQL ``COMMIT`` whose answer never reaches the store (the connection dies)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from surefoot.store.postgres.base import PostgresBase


def lose_next_commit_answer(monkeypatch: pytest.MonkeyPatch, *, committed: bool) -> list[bool]:
    """From now on, the next write transaction's end (its last statements and ``COMMIT``)
    commits, or with ``committed=False`` rolls back instead, and then fails as if the
    connection had died before the answer came; later ones are left alone. The list
    returned gets one entry once that happened."""
    real_commit = PostgresBase._commit
    lost: list[bool] = []

    def commit_then_lose_the_answer(
        self: PostgresBase, conn: psycopg.Connection[Any], cur: Any, end: Any
    ) -> None:
        if lost:
            real_commit(self, conn, cur, end)
            return
        lost.append(True)
        if committed:
            real_commit(self, conn, cur, end)
        else:
            conn.rollback()
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(PostgresBase, "_commit", commit_then_lose_the_answer)
    return lost
