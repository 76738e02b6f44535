-- Surefoot schema 3 (PostgreSQL): observability.
-- A run's trace context (W3C traceparent of its root span): every execution of the run,
-- on any worker and after any crash, opens its spans under it, so one run is one trace.
ALTER TABLE runs ADD COLUMN trace_context TEXT;

-- Alert rule firings and resolutions, in the order they were recorded. A rule's current
-- state is its newest row.
CREATE TABLE alert_events (
    event_seq   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    severity    TEXT NOT NULL,
    value       DOUBLE PRECISION,
    threshold   DOUBLE PRECISION,
    summary     TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX alert_events_rule ON alert_events (rule, event_seq);

-- Stats read by the metrics collector and the alert rules.
CREATE INDEX attempts_finished ON attempts (finished_at);
CREATE INDEX dead_letters_time ON dead_letters (dead_lettered_at);
