"""Appending a transaction's audit entries to the hash chain in one statement.

The chain is serialised by the single ``audit_head`` row: whoever appends locks it
until commit, so entries are numbered and linked in commit order. To hold that lock
as briefly as possible, a write transaction queues its entries while it runs and
appends them all at the end with :data:`APPEND_SQL`, sent in the same round trip as
``COMMIT``: the statement locks the head, numbers and hashes the entries on the
server, inserts them and moves the head. The lock is then held only while the
server runs that statement and flushes the commit, never across a round trip to
the client (nor while a client thread waits for its turn to run Python).

The hash is :func:`surefoot.domain.audit.entry_hash`, computed by the server:
``sha256(prev_hash || '\\n' || body)`` in hex, where ``body`` is the canonical JSON of
the entry. Its keys are sorted and ``seq`` sorts last, and ``canonical`` escapes
everything outside ASCII, so the client sends the body up to ``"seq":`` (``prefix``)
and the server appends the number and the closing brace. ``audit verify`` checks
every entry against the Python function, and the tests pin that the two agree.
"""

from __future__ import annotations

from surefoot.domain.audit import GENESIS

# The queued entries arrive as one JSON array of rows (at, actor, action, entity,
# entity_id, before, after, reason, correlation_id, prefix), in queue order, in one
# parameter, read by the server as jsonb (parsed once, then field by field): the text is
# the same however many entries there are, so the client parses it once and the server
# prepares it once (a text with a row of placeholders per entry was parsed again for
# every transaction, as the driver caches no statement with more than 50 parameters; one
# array parameter per column cost more to send than that; json instead of jsonb, more
# server time to read).
APPEND_SQL = f"""
WITH RECURSIVE
queued (at, actor, action, entity, entity_id, before, after, reason, correlation_id,
        prefix, n) AS (
    SELECT (e->>0)::timestamptz, e->>1, e->>2, e->>3, e->>4, e->>5, e->>6, e->>7, e->>8,
           e->>9, n
    FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS queued_rows (e, n)
),
head AS (SELECT seq, hash FROM audit_head WHERE only_row = 1 FOR UPDATE),
chain (n, seq, prev_hash, hash) AS (
    SELECT 0::bigint, COALESCE((SELECT seq FROM head), 0),
           NULL::text, COALESCE((SELECT hash FROM head), '{GENESIS}')
    UNION ALL
    SELECT q.n, c.seq + 1, c.hash,
           encode(sha256(convert_to(
               c.hash || E'\\n' || q.prefix || (c.seq + 1)::text || '}}', 'UTF8'
           )), 'hex')
    FROM chain AS c JOIN queued AS q ON q.n = c.n + 1
),
appended AS (
    INSERT INTO audit_log (seq, at, actor, action, entity, entity_id, before, after,
                           reason, correlation_id, prev_hash, hash)
    SELECT c.seq, q.at, q.actor, q.action, q.entity, q.entity_id, q.before, q.after,
           q.reason, q.correlation_id, c.prev_hash, c.hash
    FROM chain AS c JOIN queued AS q ON q.n = c.n
)
INSERT INTO audit_head (only_row, seq, hash)
SELECT 1, seq, hash FROM chain WHERE n > 0 ORDER BY n DESC LIMIT 1
ON CONFLICT (only_row) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
"""
