"""A transaction's last statements as one statement, when they are only plain inserts.

A transaction that has sent nothing before its end (a ``start`` that reads nothing first:
its run's insert, its audit entries, its wake-up) is run by the server as one implicit
transaction. Sent as a pipeline, that is one round trip but three statements, each
with the client library's work of a statement, and the pipeline's own: for a lone
``start`` that was most of the client's processor time outside PostgreSQL. Here the
inserts become data-modifying ``WITH`` parts of the one statement that sends the
wake-ups (or of ``SELECT 1``), to the same effect:

* one statement is one implicit transaction: everything commits or nothing does, and
  an error in any part is raised by the statement, as it was by the pipeline;
* every part of a ``WITH`` that modifies data runs exactly once, read or not;
* the parts see the same snapshot and not each other's rows, which changes nothing
  for inserts of new rows that read nothing (:data:`_PLAIN_INSERT`: a ``VALUES`` list of
  parameters, no ``ON CONFLICT``, no ``RETURNING``, no query): a key inserted twice still
  fails on its unique index, and a foreign key is still checked at the statement's end;
* notifications are sent at the commit, whichever part queued them.

A transaction that has sent statements already (a run's end, a wait) keeps its pipeline,
but its last two statements before ``COMMIT``, its audit entries' insert and its wake-ups,
go as one the same way: neither reads anything, and nothing after them reads what they
write. Anything else (an ``UPDATE``, an upsert, an insert from a query) keeps the pipeline,
as does a transaction of more than :data:`MAX_INSERTS` inserts (``start_many`` of more than
two runs), for which the pipeline was measured as fast or faster.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# An insert of one row of parameters (each perhaps cast), into named columns.
_PLAIN_INSERT = re.compile(
    r"INSERT INTO \w+ \(\w+(?:, ?\w+)*\) VALUES \(%s(?:::\w+)?(?:, ?%s(?:::\w+)?)*\)"
)
# Beyond this, the pipeline. A lone start's two inserts (its run's and its audit
# entries'), or ``start_many``'s of two runs, cost the client about a third less CPU
# per run as one statement; with four runs it was about even, with ten and fifty the
# one statement cost more (``bench/results/2026-12-07-20-postgres-one-statement-start-pairs.md``).
MAX_INSERTS = 3


def is_plain_insert(sql: str) -> bool:
    """Whether ``sql`` inserts one row of parameters and nothing else (see the module doc)."""
    return _PLAIN_INSERT.fullmatch(sql) is not None


def one_statement(
    inserts: Sequence[tuple[str, Sequence[Any]]], last: tuple[str, Sequence[Any]] | None
) -> tuple[str, list[Any]] | None:
    """``inserts`` as ``WITH`` parts of ``last`` (a ``SELECT``; ``SELECT 1`` if None),
    with the parameters in the order of the text; None if an insert is not plain, or
    if there are none or more than :data:`MAX_INSERTS`."""
    if not 0 < len(inserts) <= MAX_INSERTS:
        return None
    if not all(is_plain_insert(sql) for sql, _ in inserts):
        return None
    parts = ", ".join(f"i{n} AS ({sql})" for n, (sql, _) in enumerate(inserts))
    params: list[Any] = [value for _, values in inserts for value in values]
    if last is None:
        return f"WITH {parts} SELECT 1", params
    return f"WITH {parts} {last[0]}", [*params, *last[1]]
