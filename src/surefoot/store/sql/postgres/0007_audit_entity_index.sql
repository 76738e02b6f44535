-- Surefoot schema 7 (PostgreSQL): the index on audit_log (entity, entity_id) served no
-- query (a run's entries are found through audit_entity_id), and every entry a sweep
-- appends paid for it. Dropped; the version stays the same on both stores (SQLite gains
-- the entity_id index it lacked).
DROP INDEX IF EXISTS audit_entity;
