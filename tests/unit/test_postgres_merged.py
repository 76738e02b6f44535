"""Which deferred statements may become parts of one statement (``store/postgres/merged.py``).

Only inserts of one row of parameters: anything that reads, updates, upserts or returns
would see, in a ``WITH`` part, a snapshot without the other parts' rows, so it keeps the
pipeline. The parameters of the one statement follow its text.
"""

from __future__ import annotations

import pytest

from surefoot.store.postgres import audit, intake, merged
from surefoot.store.postgres.base import _NOTIFY_ALL

PLAIN = [
    "INSERT INTO runs (run_id, workflow) VALUES (%s, %s)",
    "INSERT INTO t (a,b) VALUES (%s,%s::jsonb)",
    audit.STORE_SQL,
    intake._INSERT_RUN,
]
NOT_PLAIN = [
    "INSERT INTO t (a) VALUES (%s) ON CONFLICT (a) DO NOTHING",
    "INSERT INTO t (a) VALUES (%s) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
    "INSERT INTO t (a) VALUES (%s) RETURNING a",
    "INSERT INTO t (a) SELECT a FROM u WHERE b = %s",
    "INSERT INTO t (a) VALUES (%s), (%s)",
    "INSERT INTO t (a) VALUES ((SELECT max(a) FROM t))",
    "INSERT INTO t (a) VALUES (now())",
    "INSERT INTO t VALUES (%s)",
    "UPDATE t SET a = %s",
    "DELETE FROM t WHERE a = %s",
    "SELECT %s",
    "INSERT INTO t (a) VALUES (%s); DELETE FROM t",
]


@pytest.mark.parametrize("sql", PLAIN)
def test_an_insert_of_one_row_of_parameters_is_plain(sql: str):
    assert merged.is_plain_insert(sql)


@pytest.mark.parametrize("sql", NOT_PLAIN)
def test_anything_else_is_not(sql: str):
    assert not merged.is_plain_insert(sql)
    assert merged.one_statement([(PLAIN[0], (1, 2)), (sql, (3,))], None) is None


def test_the_parts_and_their_parameters_follow_one_order():
    wake = (_NOTIFY_ALL, ('[["c","q"]]',))
    statement = merged.one_statement([(PLAIN[0], ("r1", "w")), (audit.STORE_SQL, ["[]"])], wake)
    assert statement == (
        f"WITH i0 AS ({PLAIN[0]}), i1 AS ({audit.STORE_SQL}) {_NOTIFY_ALL}",
        ["r1", "w", "[]", '[["c","q"]]'],
    )
    assert merged.one_statement([(PLAIN[0], ("r1", "w"))], None) == (
        f"WITH i0 AS ({PLAIN[0]}) SELECT 1",
        ["r1", "w"],
    )


def test_nothing_to_insert_or_too_many_inserts_keeps_the_pipeline():
    assert merged.one_statement([], (_NOTIFY_ALL, ("[]",))) is None
    row = tuple(range(18))
    fits = [(intake._INSERT_RUN, row)] * merged.MAX_INSERTS
    assert merged.one_statement(fits, None) is not None
    assert merged.one_statement([*fits, (intake._INSERT_RUN, row)], None) is None
