"""Pooled connections whose transactions begin without a round trip of their own.

Left to itself, psycopg opens a transaction by sending ``BEGIN`` and waiting for its
answer before it sends the transaction's first statement: a round trip that carries
nothing, paid by every read and every write. The store's pooled connections are in
autocommit mode as far as psycopg knows, and the store begins each transaction itself:
:func:`begin` marks the connection, and the first statement that any cursor of the
connection executes after that is sent right behind the ``BEGIN``, in one round trip
(both in a pipeline, whose end reads both answers; an error in either is raised there,
as it would have been by the statement alone). A statement sent inside a pipeline the
caller opened has the ``BEGIN`` queued in front of it. A statement without parameters
may hold several statements, which a pipeline does not allow: it is sent after the
``BEGIN`` has been answered, as psycopg would.

``COMMIT`` and ``ROLLBACK`` are psycopg's own (``Connection.commit`` looks at the
server's transaction status, not at the autocommit flag), or a statement queued with a
transaction's last ones. A transaction that executed nothing never sent its ``BEGIN``:
:func:`forget` clears the mark when the connection goes back to the pool, or when the
transaction's statements are all sent at its end in one pipeline, which the server runs as
one implicit transaction up to the pipeline's sync (:func:`unsent` tells that case).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import psycopg
from psycopg import pq
from psycopg.abc import Params, QueryNoTemplate
from psycopg.rows import DictRow

READ_COMMITTED = "BEGIN ISOLATION LEVEL READ COMMITTED"
REPEATABLE_READ_ONLY = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


class Connection(psycopg.Connection[Any]):
    """A pooled connection: in autocommit mode for psycopg, with the ``BEGIN`` of the
    transaction it is lent for, if that has not been sent yet."""

    opening: str | None = None


class Cursor(psycopg.Cursor[DictRow]):
    """A cursor that sends its connection's pending ``BEGIN`` with its first statement."""

    def execute(  # type: ignore[override]  # the store sends no template strings
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        opening = _take_opening(self.connection)
        if opening is None:
            super().execute(query, params, prepare=prepare, binary=binary)
            return self
        conn = self.connection
        if conn.pgconn.pipeline_status != pq.PipelineStatus.OFF:
            conn.execute(opening, prepare=False)  # queued in front of the statement
            super().execute(query, params, prepare=prepare, binary=binary)
        elif params is None:  # perhaps several statements: not in a pipeline
            conn.execute(opening, prepare=False)
            super().execute(query, params, prepare=prepare, binary=binary)
        else:
            with conn.pipeline():
                conn.execute(opening, prepare=False)
                super().execute(query, params, prepare=prepare, binary=binary)
        return self

    def executemany(  # type: ignore[override]  # the store sends no template strings
        self,
        query: QueryNoTemplate,
        params_seq: Iterable[Params],
        *,
        returning: bool = False,
    ) -> None:
        opening = _take_opening(self.connection)
        if opening is not None:
            self.connection.execute(opening, prepare=False)
        super().executemany(query, params_seq, returning=returning)


def begin(conn: psycopg.Connection[Any], statement: str) -> None:
    """Open a transaction on ``conn`` with ``statement`` (``READ_COMMITTED`` ...), sent with
    the first statement executed on it."""
    if not isinstance(conn, Connection):
        raise TypeError("a transaction can only be begun on a pooled store connection")
    conn.opening = statement


def unsent(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn``'s transaction has sent nothing yet (its ``BEGIN`` still waits)."""
    return isinstance(conn, Connection) and conn.opening is not None


def forget(conn: psycopg.Connection[Any]) -> None:
    """Drop a ``BEGIN`` that was never sent (the transaction executed nothing)."""
    if isinstance(conn, Connection):
        conn.opening = None


def _take_opening(conn: psycopg.Connection[Any]) -> str | None:
    if not isinstance(conn, Connection) or conn.opening is None:
        return None
    opening, conn.opening = conn.opening, None
    return opening
