"""The audit chain on PostgreSQL: entries stored with their change, chained shortly after.

A hash chain is appended to one entry after another: each entry's hash covers the one
before. Appended by the transaction that makes the change, the chain's head (the single
``audit_head`` row) must stay locked until that transaction has committed, flush
included, or the next entry could link to one that is then rolled back; every audited
write of every process would then commit after the one before it, never two flushes at
once.

So a write transaction does not touch the chain. It stores its entries in
``audit_pending`` with :data:`STORE_SQL` (one row per transaction: its entries as one
JSON array, in the order queued), sent with its ``COMMIT``: the entries commit with the
change or not at all, as before. Then a *sweep* locks the head, takes the pending rows
committed before it (oldest first), numbers and hashes their entries, inserts them into
``audit_log`` and moves the head, in one transaction and one statement
(:data:`SWEEP_SQL`, a function of the schema), so that no client holds the head between
two round trips. Each store sweeps shortly after a commit of its own stored entries (see
:mod:`surefoot.store.postgres.sweep`) and before it reads the log or its head, so a read
of the log finds in the chain every entry committed before the read began. A sweep takes
the pending entries of every process, so those of a process that died before its sweep
are chained by the next.

The entries are numbered in the order they were stored (a transaction's together, in its
order); a transaction that stores its entries before another but commits after it may be
numbered after it, if a sweep ran in between. Workers of the previous release append to
``audit_log`` themselves, under the head's lock: the sweep takes the same lock, so the
chain stays one.

The hash is :func:`surefoot.domain.audit.entry_hash`, computed by the server:
``sha256(prev_hash || '\\n' || body)`` in hex, where ``body`` is the canonical JSON of
the entry. Its keys are sorted and ``seq`` sorts last, and ``canonical`` escapes
everything outside ASCII, so the writer stores the body up to ``"seq":`` (``prefix``)
and the sweep appends the number and the closing brace. ``audit verify`` checks every
entry against the Python function, and the tests pin that the two agree.
"""

from __future__ import annotations

# A write transaction's entries: one JSON array of rows (at, actor, action, entity,
# entity_id, before, after, reason, correlation_id, prefix) in one parameter.
STORE_SQL = "INSERT INTO audit_pending (entries) VALUES (%s::jsonb)"

# Pending transactions' worth of entries one sweep transaction chains: bounds how long it
# holds the head (a sweep goes on with the next ones in a new transaction).
SWEEP_BATCH = 500

# One sweep transaction, sent alone (committed at its end, in the same round trip): the
# function (schema 6) locks the head, takes up to SWEEP_BATCH pending rows committed before
# it, the oldest first, numbers and hashes their entries, appends them and moves the head,
# all on the server, so the head is never held while a client thinks (or is stopped).
# Returns how many pending rows it took: 0, with no lock taken, when there were none.
SWEEP_SQL = f"SELECT surefoot_audit_sweep({SWEEP_BATCH}) AS taken"
