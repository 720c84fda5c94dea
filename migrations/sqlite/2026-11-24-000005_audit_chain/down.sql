DROP INDEX audit_events_outcome;
DROP INDEX audit_events_ip;
DROP INDEX audit_events_actor;
ALTER TABLE audit_events DROP COLUMN hash;
ALTER TABLE audit_events DROP COLUMN prev_hash;
