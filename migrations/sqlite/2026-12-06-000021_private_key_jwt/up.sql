-- How a client authenticates at the back channel (RFC 7591's
-- token_endpoint_auth_method): client_secret_basic or client_secret_post (a secret),
-- none (a public client), or private_key_jwt (a JWT signed with one of the keys in
-- client_keys; such a client has no secret).
ALTER TABLE oauth_clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic';
UPDATE oauth_clients SET token_endpoint_auth_method = 'none' WHERE secret_hash IS NULL;
-- A private_key_jwt client's public keys: an inline JWK Set (`jwks`) or where it
-- publishes one (`jwks_uri`). Its own table: read only when a client signs in with a
-- JWT, and oauth_clients is at diesel's 16-column limit.
CREATE TABLE client_keys (
    client_id TEXT PRIMARY KEY NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    jwks_uri TEXT NULL,
    jwks TEXT NULL
);
-- Client assertions seen (RFC 7523 section 3, item 7: a jti is used once): the SHA-256
-- of client id and jti, kept until the assertion expires. The primary key makes the
-- second use fail on every instance at once.
CREATE TABLE client_assertion_jtis (
    jti_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);
