-- Security keys and passkeys. `id` is the credential id (base64url), globally unique:
-- a credential registered to one user can never be attached to another. `credential`
-- is webauthn-rs's serialised Passkey (public key, counter, flags).
CREATE TABLE webauthn_credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials(user_id);
