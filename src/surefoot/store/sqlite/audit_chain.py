"""Appending to the audit chain from inside a write batch.

Every entry's hash covers the previous entry's hash, so appends are serialised by the
chain's head (``audit_head``: the last sequence number and hash). All writes of a process
run in the group committer's batches, one transaction holding SQLite's write lock, and a
batch may append dozens of entries. Reading and rewriting the head row for each of them
would cost two statements an entry; instead the head is read once per batch, carried in
memory from one entry to the next, and written once, right before the COMMIT. Nothing
else can append meanwhile: the batch holds the database's only write lock.

The committer tells the appender where the batch stands (its ``BatchHooks``): a new
transaction forgets the head (a retried batch reads it again), and an item rolled back
to its savepoint takes the head back to where it was before that item.
"""

from __future__ import annotations

import sqlite3

from surefoot.domain.audit import GENESIS, entry_row, hash_with_seq
from surefoot.domain.records import AuditRecord

_Head = tuple[int, str]
_Mark = tuple[_Head | None, bool]


class AuditAppender:
    """The audit chain's head during one batch, and the append that advances it."""

    def __init__(self) -> None:
        self._head: _Head | None = None  # None: not read in this transaction yet
        self._dirty = False  # the head moved since it was read

    # -- the committer's BatchHooks ---------------------------------------------------------
    def begin(self) -> None:
        self._head, self._dirty = None, False

    def mark(self) -> object:
        return (self._head, self._dirty)

    def rollback_to(self, mark: object) -> None:
        head, dirty = _as_mark(mark)
        self._head, self._dirty = head, dirty

    def before_commit(self, cur: sqlite3.Cursor) -> None:
        if self._dirty and self._head is not None:
            cur.execute(
                "INSERT INTO audit_head (only_row, seq, hash) VALUES (1, ?, ?) "
                "ON CONFLICT (only_row) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                self._head,
            )
            self._dirty = False

    # -- appending ---------------------------------------------------------------------------
    def append(self, cur: sqlite3.Cursor, record: AuditRecord, at: str) -> None:
        """Insert the next entry of the chain (``at``: its stored timestamp). ``before``
        and ``after`` are stored as the canonical JSON the hash covers, encoded once."""
        *stored, prefix = entry_row(record, at)
        if self._head is None:
            row = cur.execute("SELECT seq, hash FROM audit_head WHERE only_row = 1").fetchone()
            self._head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        prev_hash = self._head[1]
        seq = self._head[0] + 1
        digest = hash_with_seq(prev_hash, prefix, seq)
        cur.execute(
            "INSERT INTO audit_log (seq, at, actor, action, entity, entity_id, before, after,"
            " reason, correlation_id, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (seq, *stored, prev_hash, digest),
        )
        self._head, self._dirty = (seq, digest), True


def _as_mark(mark: object) -> _Mark:
    if not (isinstance(mark, tuple) and len(mark) == 2):
        raise TypeError(f"not a mark of this appender: {mark!r}")
    head, dirty = mark
    return (head, bool(dirty))
