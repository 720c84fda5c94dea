-- Every audited write starts by taking the chain's lock and reading the last event's
-- hash: two round trips, now one. A VOLATILE function's statements each take a fresh
-- snapshot (READ COMMITTED), so the read runs after the lock is granted and sees the
-- event committed by whoever held the lock before; the lock is the same
-- transaction-scoped advisory lock as before (its key is passed in), so instances still
-- on the previous release keep serialising with this one.
-- (SQLite has one writer at a time and needs no lock: no SQLite migration goes with this.)
CREATE FUNCTION audit_chain_head(lock_key BIGINT) RETURNS TEXT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN COALESCE((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), '');
END
$$;
