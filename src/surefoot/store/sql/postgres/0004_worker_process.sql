-- Surefoot schema 4 (PostgreSQL): what identifies a worker's process on its host.
-- A worker records the kernel's boot id, its pid namespace and its process start time
-- (clock ticks after boot). Another worker on the same host, boot and pid namespace can
-- then prove that the process is gone and take its runs over without waiting for the
-- leases to expire. Workers that record none of these are only ever taken over by expiry.
ALTER TABLE workers ADD COLUMN boot_id TEXT;
ALTER TABLE workers ADD COLUMN pid_namespace TEXT;
ALTER TABLE workers ADD COLUMN process_started BIGINT;

-- The workers not stopped, looked up by host at every check.
CREATE INDEX workers_live ON workers (hostname) WHERE stopped_at IS NULL;
