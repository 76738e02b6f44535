-- Surefoot schema 6 (PostgreSQL): audit entries waiting for their place in the hash chain.
-- A write transaction stores its entries here, one JSON array of rows per transaction, in
-- the same transaction as the change they record; a store's sweep, shortly after its
-- commit (and before any read of the log), moves them into audit_log, numbered and linked,
-- in the order they were stored. Writers no longer lock audit_head; the sweep does. Workers
-- of the previous version, which still append to audit_log themselves under audit_head's
-- lock, can run while this is applied and after it: the head orders both.
CREATE TABLE audit_pending (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entries  JSONB NOT NULL
);

-- One sweep: lock the head, take up to batch_size pending transactions' entries (the
-- oldest first), number and hash them after the head, append them and move the head.
-- Returns how many pending rows it took. All on the server, in the caller's transaction,
-- so the head is never held while a client thinks. Each entry row is [at, actor, action,
-- entity, entity_id, before, after, reason, correlation_id, prefix], prefix being the
-- entry's canonical JSON up to "seq": (the hash covers prefix, seq and the closing brace).
CREATE FUNCTION surefoot_audit_sweep(batch_size integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    head_seq      bigint;
    head_hash     text;
    taken_groups  jsonb[];
    taken_count   integer;
    one_entry     jsonb;
    n             integer := 0;
    new_entries   jsonb[] := '{}';
    new_seqs      bigint[] := '{}';
    new_prevs     text[] := '{}';
    new_hashes    text[] := '{}';
    i             integer;
    j             integer;
BEGIN
    -- Nothing pending (another sweep took it): no lock, so nothing to flush at commit.
    IF NOT EXISTS (SELECT 1 FROM audit_pending) THEN
        RETURN 0;
    END IF;
    SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE only_row = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the audit chain''s head row (audit_head) is missing';
    END IF;
    -- A statement of its own, so its snapshot is taken with the head held: it sees every
    -- pending row committed before, and none that an earlier sweep took.
    WITH taken_rows AS (
        DELETE FROM audit_pending
        WHERE id IN (SELECT id FROM audit_pending ORDER BY id LIMIT batch_size)
        RETURNING audit_pending.id, audit_pending.entries
    )
    SELECT array_agg(t.entries ORDER BY t.id), count(*) INTO taken_groups, taken_count
    FROM taken_rows AS t;
    IF taken_count = 0 THEN
        RETURN 0;
    END IF;
    FOR i IN 1 .. array_length(taken_groups, 1) LOOP
        FOR j IN 0 .. jsonb_array_length(taken_groups[i]) - 1 LOOP
            one_entry := taken_groups[i] -> j;
            n := n + 1;
            head_seq := head_seq + 1;
            new_entries[n] := one_entry;
            new_seqs[n] := head_seq;
            new_prevs[n] := head_hash;
            head_hash := encode(sha256(convert_to(
                head_hash || E'\n' || (one_entry ->> 9) || head_seq::text || '}', 'UTF8'
            )), 'hex');
            new_hashes[n] := head_hash;
        END LOOP;
    END LOOP;
    IF n > 0 THEN
        INSERT INTO audit_log (seq, at, actor, action, entity, entity_id, before, after,
                               reason, correlation_id, prev_hash, hash)
        SELECT c.seq, (c.e ->> 0)::timestamptz, c.e ->> 1, c.e ->> 2, c.e ->> 3, c.e ->> 4,
               c.e ->> 5, c.e ->> 6, c.e ->> 7, c.e ->> 8, c.prev, c.hash
        FROM unnest(new_entries, new_seqs, new_prevs, new_hashes) AS c (e, seq, prev, hash);
        UPDATE audit_head SET seq = head_seq, hash = head_hash WHERE only_row = 1;
    END IF;
    RETURN taken_count;
END;
$$;
