-- Surefoot schema 8 (SQLite): the runs that fall due by time alone, each kind in an index
-- of its own that holds only them.
-- A claim and a worker's look at what falls due next (`next_due`) ask for the waiting runs
-- whose wake time has come and for the running ones whose lease has run out. Through
-- runs_wake, (status, wake_at) over every run, the second read every run being executed
-- (and the look at the next lease to run out, planned through runs_workflow, every run of
-- the workflows ever started); and every start, claim and end of a run changed an entry of
-- runs_wake that no query wanted. Now runs_waking holds the waiting runs by wake time and
-- runs_leased the running and compensating ones by lease expiry, so those reads find what
-- is due and nothing else, and a run that never waits enters runs_leased only while a
-- worker holds it. Building them reads the runs table and holds writes meanwhile (stop the
-- workers for the upgrade, as the runbook says).
DROP INDEX IF EXISTS runs_wake;
CREATE INDEX runs_waking ON runs (wake_at) WHERE status = 'waiting';
CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE status IN ('running', 'compensating');
