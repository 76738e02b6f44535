-- Surefoot schema 8 (PostgreSQL): the runs that fall due by time alone, each kind in an
-- index of its own that holds only them.
-- A claim looks for running runs whose lease has run out; through runs_claimable it read
-- every run being executed, by every worker, at each claim. runs_leased holds the running
-- and compensating runs by lease expiry, so the claim reads the expired ones only.
-- runs_wake, (status, wake_at) over every run, gets an entry for every version of every
-- run (each claim and end writes one); runs_waking holds only the waiting runs, by wake
-- time, which is all its queries ask for. Building the indexes reads the runs table and
-- holds writes to it meanwhile (stop the workers for the upgrade, as the runbook says).
DROP INDEX IF EXISTS runs_wake;
CREATE INDEX runs_waking ON runs (wake_at) WHERE status = 'waiting';
CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE status IN ('running', 'compensating');
