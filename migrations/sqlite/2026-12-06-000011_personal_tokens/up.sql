-- Personal access tokens: scripts reach sites behind forward auth as their owner.
-- Only the SHA-256 of the secret is stored (the secret is shown once). `scopes` is a
-- space-separated list. A token ends when revoked (`revoked_at`), when it expires, and
-- when the account's credentials change (password, disable, sign out everywhere).
CREATE TABLE personal_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX personal_tokens_user ON personal_tokens(user_id);
