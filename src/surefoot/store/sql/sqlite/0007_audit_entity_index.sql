-- Surefoot schema 7 (SQLite): the audit entries of one run found through an index.
-- The log was read for a run's entries (the run's own and its attempts',
-- "<run_id>/<position>/<attempt>") by a scan of the whole table: the index on (entity,
-- entity_id) served no query, since none names the entity. It is replaced by one on
-- entity_id alone, which the lookup of a run's entries uses, and which costs each new
-- entry the same. Building it reads the whole log and holds writes meanwhile (stop the
-- workers for the upgrade, as the runbook says).
DROP INDEX IF EXISTS audit_entity;
CREATE INDEX audit_entity_id ON audit_log (entity_id);
