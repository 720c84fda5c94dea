-- One authorization of a client: what a code exchange starts and its refresh tokens
-- continue (a "family"). Revoking it refuses its refresh tokens and the access tokens
-- issued under it (they carry its id).
CREATE TABLE oauth_grants (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The code that started it, so a second use of the code can revoke it.
    code_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    sid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oauth_grants_user_client ON oauth_grants (user_id, client_id);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

-- Refresh tokens, stored as SHA-256; each use marks the row used and adds its successor.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

-- Access tokens revoked one by one (RFC 7009), kept until they would have expired.
CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);

-- The JWS algorithm of this client's ID tokens (RS256 unless it asked for ES256 or EdDSA).
ALTER TABLE oauth_clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
