-- Surefoot schema 5 (PostgreSQL): the pending runs in the order claims take them.
-- A claim reads the first pending runs by priority, then age, across queues; without this
-- index PostgreSQL read and sorted every pending run at each claim. Only pending runs are
-- in it, so it stays as small as the backlog. Building it reads the runs table once and
-- holds writes to it meanwhile (stop the workers for the upgrade, as the runbook says).
CREATE INDEX runs_pending ON runs (priority DESC, created_at) WHERE status = 'pending';
