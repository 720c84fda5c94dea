-- Pushed authorization requests (RFC 9126): an authenticated client posts its
-- authorization request's parameters and gets a one-time request_uri for them.
-- Only the SHA-256 of the request_uri's random part is kept; the row is taken out
-- (deleted) by the first authorization that uses it, and lives 60 s otherwise.
CREATE TABLE pushed_requests (
    request_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pushed_requests_expires_at ON pushed_requests (expires_at);
-- The client must push its authorization requests: a plain one is refused.
ALTER TABLE oauth_clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT 0;
