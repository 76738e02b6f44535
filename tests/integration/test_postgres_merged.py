"""What one statement of merged inserts does on the server (``store/postgres/merged.py``).

The module's promise: the parts of one statement commit together or not at all, a key
inserted by two parts still fails on its unique index, and a foreign key to a row that
another part inserts holds, since it is checked at the statement's end. Checked here on a
real server, with tables of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from surefoot.store.postgres import merged
from tests import postgres_support

pytestmark = pytest.mark.postgres

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

PARENT = "INSERT INTO parent (id, note) VALUES (%s, %s)"
CHILD = "INSERT INTO child (id, parent_id) VALUES (%s, %s)"


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_url, autocommit=True) as opened:
        opened.execute("CREATE TABLE parent (id text PRIMARY KEY, note text NOT NULL)")
        opened.execute(
            "CREATE TABLE child (id text PRIMARY KEY, parent_id text NOT NULL REFERENCES parent)"
        )
        yield opened


def send(conn: psycopg.Connection[Any], *inserts: tuple[str, tuple[object, ...]]) -> None:
    statement = merged.one_statement(list(inserts), None)
    assert statement is not None
    conn.execute(*statement)


def stored(conn: psycopg.Connection[Any]) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT 'parent', id FROM parent UNION ALL SELECT 'child', id FROM child ORDER BY 1, 2"
    ).fetchall()


def test_the_parts_commit_together(conn: psycopg.Connection[Any]):
    send(conn, (PARENT, ("p", "n")), (CHILD, ("c", "p")))
    assert stored(conn) == [("child", "c"), ("parent", "p")]


def test_a_key_inserted_by_two_parts_fails_the_whole_statement(conn: psycopg.Connection[Any]):
    with pytest.raises(psycopg.errors.UniqueViolation):
        send(conn, (PARENT, ("p", "n")), (CHILD, ("c", "p")), (PARENT, ("p", "again")))
    assert stored(conn) == []


def test_a_part_that_fails_takes_the_others_with_it(conn: psycopg.Connection[Any]):
    with pytest.raises(psycopg.errors.NotNullViolation):
        send(conn, (PARENT, ("p", "n")), (PARENT, ("q", None)))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        send(conn, (PARENT, ("p", "n")), (CHILD, ("c", "nobody")))
    assert stored(conn) == []
