"""Appending to the audit chain from inside a write batch.

Every entry's hash covers the previous entry's hash, so appends are serialised by the
chain's head (``audit_head``: the last sequence number and hash). All writes of a process
run in the group committer's batches, one transaction holding SQLite's write lock, and a
batch may append dozens of entries. Reading and rewriting the head row for each of them
would cost two statements an entry; instead the head is read once per batch, carried in
memory from one entry to the next, and written once, right before the COMMIT. The
entries themselves wait in memory too and go in one statement before the COMMIT (a run's
end alone appends half a dozen). Nothing else can append meanwhile: the batch holds the
database's only write lock, and nothing reads the chain inside a write batch.

The committer tells the appender where the batch stands (its ``BatchHooks``): a new
transaction forgets the head and the entries waiting (a retried batch reads the head
again), and an item rolled back to its savepoint takes the head back to where it was
before that item and drops the entries it appended. An entry the table would refuse (a
missing actor, action or entity) is refused when appended, so that it fails its own
item, not the batch's COMMIT.
"""

from __future__ import annotations

import sqlite3

from surefoot.domain.audit import GENESIS, entry_row, hash_with_seq
from surefoot.domain.records import AuditRecord
from surefoot.errors import StoreError

_Head = tuple[int, str]
_Mark = tuple[_Head | None, bool, int]
_Row = tuple[object, ...]

_INSERT_ENTRIES = (
    "INSERT INTO audit_log (seq, at, actor, action, entity, entity_id, before, after,"
    " reason, correlation_id, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


class AuditAppender:
    """The audit chain's head during one batch, and the append that advances it."""

    def __init__(self) -> None:
        self._head: _Head | None = None  # None: not read in this transaction yet
        self._dirty = False  # the head moved since it was read
        self._entries: list[_Row] = []  # appended in this transaction, not inserted yet
        self._in_batch = False  # between a batch's begin and its before_commit

    # -- the committer's BatchHooks ---------------------------------------------------------
    def begin(self) -> None:
        self._head, self._dirty = None, False
        self._entries = []
        self._in_batch = True

    def mark(self) -> object:
        return (self._head, self._dirty, len(self._entries))

    def rollback_to(self, mark: object) -> None:
        head, dirty, entries = _as_mark(mark)
        self._head, self._dirty = head, dirty
        del self._entries[entries:]

    def before_commit(self, cur: sqlite3.Cursor) -> None:
        self._in_batch = False
        if self._entries:
            entries, self._entries = self._entries, []
            cur.executemany(_INSERT_ENTRIES, entries)
        if self._dirty and self._head is not None:
            cur.execute(
                "INSERT INTO audit_head (only_row, seq, hash) VALUES (1, ?, ?) "
                "ON CONFLICT (only_row) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                self._head,
            )
            self._dirty = False

    # -- appending ---------------------------------------------------------------------------
    def append(self, cur: sqlite3.Cursor, record: AuditRecord, at: str) -> None:
        """Append the next entry of the chain (``at``: its stored timestamp), inserted
        with the batch's others before its COMMIT. ``before`` and ``after`` are stored as
        the canonical JSON the hash covers, encoded once."""
        if not self._in_batch:
            raise StoreError("an audit entry is appended only inside a write batch")
        _check(record)
        *stored, prefix = entry_row(record, at)
        if self._head is None:
            row = cur.execute("SELECT seq, hash FROM audit_head WHERE only_row = 1").fetchone()
            self._head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        prev_hash = self._head[1]
        seq = self._head[0] + 1
        digest = hash_with_seq(prev_hash, prefix, seq)
        self._entries.append((seq, *stored, prev_hash, digest))
        self._head, self._dirty = (seq, digest), True


def _check(record: AuditRecord) -> None:
    """Refuse an entry that the table's NOT NULL columns would refuse at the COMMIT."""
    if not (
        isinstance(record.actor, str)
        and isinstance(record.action, str)
        and isinstance(record.entity, str)
        and isinstance(record.entity_id, str)
    ):
        for name in ("actor", "action", "entity", "entity_id"):
            value = getattr(record, name)
            if not isinstance(value, str):
                raise TypeError(f"an audit entry's {name} must be a string, not {value!r}")


def _as_mark(mark: object) -> _Mark:
    if not (isinstance(mark, tuple) and len(mark) == 3):
        raise TypeError(f"not a mark of this appender: {mark!r}")
    head, dirty, entries = mark
    return (head, bool(dirty), int(entries))
