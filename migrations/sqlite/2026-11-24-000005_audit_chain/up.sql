-- Tamper evidence: each event stores a hash over its content and the previous event's
-- hash. Rows written before this migration keep empty hashes and are the chain's
-- unverifiable prefix.
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN hash TEXT NOT NULL DEFAULT '';
-- Filters of the admin audit viewer (newest first within each).
CREATE INDEX audit_events_actor ON audit_events(actor_id, id);
CREATE INDEX audit_events_ip ON audit_events(ip, id);
CREATE INDEX audit_events_outcome ON audit_events(outcome, id);
