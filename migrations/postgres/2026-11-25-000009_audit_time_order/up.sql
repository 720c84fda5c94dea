-- The audit viewer lists newest first by (created_at, id) and filters by time range.
-- Each filter's index continues with (created_at, id), so a filter, a time range and
-- the order are all served by one index range: a narrow week half a year back and a
-- whole year both read only the page they show.
DROP INDEX audit_events_created;
DROP INDEX audit_events_target;
DROP INDEX audit_events_event;
DROP INDEX audit_events_actor;
DROP INDEX audit_events_ip;
DROP INDEX audit_events_outcome;
CREATE INDEX audit_events_created ON audit_events(created_at, id);
CREATE INDEX audit_events_event ON audit_events(event, created_at, id);
CREATE INDEX audit_events_outcome ON audit_events(outcome, created_at, id);
CREATE INDEX audit_events_ip ON audit_events(ip, created_at, id);
CREATE INDEX audit_events_actor ON audit_events(actor_id, created_at, id);
CREATE INDEX audit_events_target ON audit_events(target_id, created_at, id);
