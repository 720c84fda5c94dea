-- RFC 8628 device authorization: one row per request a device started. The device
-- code (32 random bytes) and the user code (short, typed by a person) are kept only
-- as SHA-256 hashes. `status` moves pending -> approved | denied, and approved ->
-- used in the one statement that claims it for tokens (single use). The approving
-- session's proof (user, auth_time, amr, sid) is what the tokens will say.
CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY NOT NULL,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time BIGINT NULL,
    amr TEXT NULL,
    sid TEXT NULL,
    -- Seconds the device must wait between polls; slow_down adds 5.
    poll_interval BIGINT NOT NULL,
    last_polled_at BIGINT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);
CREATE INDEX device_codes_user ON device_codes (user_id);
