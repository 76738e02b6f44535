-- Surefoot schema 1 (SQLite). Migrations are numbered and never edited once released.
-- Timestamps are UTC ISO-8601 text with microseconds and "+00:00", so they sort as text.

CREATE TABLE runs (
    run_id              TEXT PRIMARY KEY,
    workflow            TEXT NOT NULL,
    queue               TEXT NOT NULL,
    status              TEXT NOT NULL,
    idempotency_key     TEXT UNIQUE,
    inputs_hash         TEXT NOT NULL,
    priority            INTEGER NOT NULL DEFAULT 0,
    partition_key       TEXT,
    debounce_key        TEXT,
    inputs              TEXT NOT NULL,
    output              TEXT,
    error               TEXT,
    correlation_id      TEXT,
    forked_from_run_id  TEXT,
    forked_at_position  INTEGER,
    wait_reason         TEXT,
    wake_at             TEXT,
    waiting_for         TEXT,
    lease_owner         TEXT,
    lease_epoch         INTEGER NOT NULL DEFAULT 0,
    lease_expires_at    TEXT,
    generation          INTEGER NOT NULL DEFAULT 0,
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    deliveries          INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    finished_at         TEXT
);
CREATE INDEX runs_claimable ON runs (status, queue, priority DESC, created_at);
CREATE INDEX runs_wake ON runs (status, wake_at);
CREATE INDEX runs_workflow ON runs (workflow, created_at);
CREATE INDEX runs_correlation ON runs (correlation_id);
CREATE INDEX runs_partition ON runs (partition_key, created_at) WHERE partition_key IS NOT NULL;
CREATE INDEX runs_debounce ON runs (workflow, debounce_key) WHERE debounce_key IS NOT NULL;

-- The journal: one row per position of a run's history. Replay reads it.
CREATE TABLE journal (
    run_id        TEXT NOT NULL REFERENCES runs (run_id),
    position      INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    wake_at       TEXT,
    created_at    TEXT NOT NULL,
    committed_at  TEXT,
    PRIMARY KEY (run_id, position)
);

-- Every attempt of every step and compensation: the timeline operators read.
CREATE TABLE attempts (
    run_id           TEXT NOT NULL REFERENCES runs (run_id),
    position         INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    generation       INTEGER NOT NULL,
    step             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    inputs           TEXT,
    outcome          TEXT NOT NULL,
    failure_class    TEXT,
    rule             TEXT,
    route            TEXT,
    decision         TEXT,
    error            TEXT,
    worker_id        TEXT,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    PRIMARY KEY (run_id, position, kind, attempt)
);
CREATE INDEX attempts_open ON attempts (run_id, outcome);

CREATE TABLE events (
    event_seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id             TEXT NOT NULL REFERENCES runs (run_id),
    name               TEXT NOT NULL,
    event_key          TEXT,
    payload            TEXT,
    sent_at            TEXT NOT NULL,
    consumed_position  INTEGER,
    UNIQUE (run_id, event_key)
);
CREATE INDEX events_pending ON events (run_id, name, consumed_position);

CREATE TABLE review_items (
    item_id        TEXT PRIMARY KEY,
    run_id         TEXT NOT NULL REFERENCES runs (run_id),
    position       INTEGER NOT NULL,
    generation     INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    title          TEXT NOT NULL,
    payload        TEXT,
    actions        TEXT NOT NULL,
    status         TEXT NOT NULL,
    assignee_role  TEXT,
    priority       INTEGER NOT NULL DEFAULT 0,
    due_at         TEXT,
    decision       TEXT,
    decided_by     TEXT,
    decided_at     TEXT,
    created_at     TEXT NOT NULL,
    correlation_id TEXT
);
CREATE INDEX review_open ON review_items (status, priority DESC, created_at);
CREATE INDEX review_run ON review_items (run_id, position, generation);

CREATE TABLE dead_letters (
    run_id          TEXT NOT NULL REFERENCES runs (run_id),
    generation      INTEGER NOT NULL,
    workflow        TEXT NOT NULL,
    failure_class   TEXT NOT NULL,
    reason          TEXT NOT NULL,
    last_error      TEXT,
    position        INTEGER,
    step            TEXT,
    attempts        INTEGER NOT NULL,
    compensated     INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    dead_lettered_at TEXT NOT NULL,
    resolved_at     TEXT,
    resolved_by     TEXT,
    resolution      TEXT,
    PRIMARY KEY (run_id, generation)
);
CREATE INDEX dead_letters_open ON dead_letters (status, dead_lettered_at);

CREATE TABLE compensations (
    run_id        TEXT NOT NULL REFERENCES runs (run_id),
    position      INTEGER NOT NULL,
    step          TEXT NOT NULL,
    status        TEXT NOT NULL,
    output        TEXT,
    committed_at  TEXT,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE queues (
    queue       TEXT PRIMARY KEY,
    paused      INTEGER NOT NULL DEFAULT 0,
    changed_by  TEXT,
    changed_at  TEXT
);

-- Token buckets shared by every worker (one row per rate-limit key).
CREATE TABLE rate_limits (
    limit_key   TEXT PRIMARY KEY,
    tokens      REAL NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE breakers (
    breaker_key           TEXT PRIMARY KEY,
    state                 TEXT NOT NULL,
    consecutive_failures  INTEGER NOT NULL,
    opened_at             TEXT,
    probe_owner           TEXT,
    updated_at            TEXT NOT NULL
);

CREATE TABLE workers (
    worker_id     TEXT PRIMARY KEY,
    hostname      TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    queues        TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    stopped_at    TEXT
);

CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY,
    at              TEXT NOT NULL,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    entity          TEXT NOT NULL,
    entity_id       TEXT NOT NULL,
    before          TEXT,
    after           TEXT,
    reason          TEXT,
    correlation_id  TEXT,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL
);
CREATE INDEX audit_entity ON audit_log (entity, entity_id);

CREATE TABLE audit_head (
    only_row  INTEGER PRIMARY KEY CHECK (only_row = 1),
    seq       INTEGER NOT NULL,
    hash      TEXT NOT NULL
);
