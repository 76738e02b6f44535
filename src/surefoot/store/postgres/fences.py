"""Lease checks sent with a transaction's deferred writes instead of before them.

A fenced write locks its run and checks the lease before it writes. Done with a
``SELECT ... FOR UPDATE`` whose answer the transaction function waits for, that costs a
round trip per write, and in a batch of the group committer each item then pays two:
its check, and the sending of its deferred writes before the next item runs.

A write that only defers statements (an attempt's start or end, a journal entry) needs
nothing from the run but its correlation id, which never changes and is known from the
claim. Such a write queues its check as the first of its deferred statements instead;
the check runs on the server before the writes that follow it, in the same round trip
that sends them (:func:`send`), and its answer is looked at there. A lost lease then
raises :class:`~surefoot.errors.LeaseLostError` for that write alone (the group committer
rolls the transaction back and runs the others again without it), exactly as a check
made first would: the writes sent after the check are rolled back with it, and nothing
commits. The group committer sends an item's deferred statements before the ``COMMIT``
whenever they hold a check (``must_settle``), so no check is ever answered after the
commit it guards.

A run's end needs one thing more: the run's status before it, for its audit entry. The
worker knows the status it last gave the run (a leased run's status is changed by its
lease holder only), so the end's check carries that status too, and a run found in
another status raises :class:`StatusChanged` for that write alone: the end is then made
again with the run read first, as a check made first would have read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from surefoot.domain.records import Lease
from surefoot.errors import LeaseLostError

# Locks the run like the check made first, and reads the transaction id with it (the
# row lock assigns one), which a lost answer to COMMIT is looked up by.
CHECK_SQL = (
    "SELECT lease_owner, lease_epoch, status, pg_current_xact_id()::text AS surefoot_xid"
    " FROM runs WHERE run_id = %s FOR UPDATE"
)


class StatusChanged(Exception):  # noqa: N818 - a signal to write again, not a failure
    """The run is not in the status the check expected: nothing was written."""


@dataclass(frozen=True)
class Check:
    """A deferred lease check: the lease, and the status the run must be in (None: any)."""

    lease: Lease
    status: str | None = None


def lost(lease: Lease) -> LeaseLostError:
    return LeaseLostError(
        f"run {lease.run_id} is no longer leased to {lease.worker_id} "
        f"(epoch {lease.epoch}); nothing was written"
    )


def holds(row: Mapping[str, Any] | None, lease: Lease) -> bool:
    """Whether the run's row shows ``lease`` as the one it holds."""
    return (
        row is not None
        and row["lease_owner"] == lease.worker_id
        and row["lease_epoch"] == lease.epoch
    )


def in_status(row: Mapping[str, Any], status: str | None) -> bool:
    """Whether the run's row is in ``status`` (any, when None)."""
    return status is None or row["status"] == status


def send(
    cur: psycopg.Cursor[DictRow],
    statements: Sequence[tuple[str, Any]],
    checks: Mapping[int, Check],
) -> str | None:
    """Run ``statements`` in one round trip; ``checks`` maps the index of each lease
    check among them to what it checks. Raises :class:`LeaseLostError` if one fails (also
    when a statement after it failed too: the refused lease is the cause), or
    :class:`StatusChanged`; returns the transaction id a check read, if any."""
    conn = cur.connection
    sent: list[tuple[psycopg.Cursor[DictRow], Check]] = []
    try:
        with conn.pipeline():
            for index, statement in enumerate(statements):
                expected = checks.get(index)
                if expected is None:
                    cur.execute(*statement)
                    continue
                check = conn.cursor(row_factory=dict_row)
                check.execute(*statement)
                sent.append((check, expected))
    except psycopg.Error:
        for check, expected in sent:
            if _answered_lost(check, expected.lease):
                raise lost(expected.lease) from None
        raise
    xid: str | None = None
    for check, expected in sent:
        row = check.fetchone()
        check.close()
        if not holds(row, expected.lease):
            raise lost(expected.lease)
        assert row is not None
        if not in_status(row, expected.status):
            raise StatusChanged(
                f"run {expected.lease.run_id} is {row['status']}, not {expected.status}"
            )
        xid = row["surefoot_xid"]
    return xid


def _answered_lost(check: psycopg.Cursor[DictRow], lease: Lease) -> bool:
    """After an error in the pipeline: whether this check had answered that the lease is
    gone (False when it had no answer)."""
    try:
        if check.pgresult is None or check.pgresult.status != psycopg.pq.ExecStatus.TUPLES_OK:
            return False
        return not holds(check.fetchone(), lease)
    except psycopg.Error:
        return False
    finally:
        check.close()
