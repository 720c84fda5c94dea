-- Accounts, roles, the session registry, one-time tokens and the audit log.
-- Times are unix seconds in BIGINT: they compare and sort the same on every backend.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    -- lower-cased copy: case-insensitive uniqueness without LIKE/ILIKE differences
    email_normalized TEXT NOT NULL UNIQUE,
    display_name TEXT,
    password_hash TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE roles (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    builtin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE role_permissions (
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE ON UPDATE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role, permission)
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_role ON user_roles(role);

-- The session registry: one row per signed-in session, whatever store holds its state.
CREATE TABLE sessions (
    sid TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_key_hash ON sessions(key_hash);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Session state for the database-backed store (used when REDIS_URL is unset).
CREATE TABLE session_state (
    key_hash TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX session_state_expires ON session_state(expires_at);

-- Emailed and printed links: only the SHA-256 of the token is stored.
CREATE TABLE one_time_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    data TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX one_time_tokens_user ON one_time_tokens(user_id, purpose);

-- No foreign keys: the log outlives the users it names.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor_id TEXT,
    target_id TEXT,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_created ON audit_events(created_at);
CREATE INDEX audit_events_target ON audit_events(target_id, id);
CREATE INDEX audit_events_event ON audit_events(event, id);

INSERT INTO roles (name, description, builtin, created_at) VALUES
    ('admin', 'Administrators: every permission', TRUE, 0),
    ('user', 'Every signed-in user', TRUE, 0);
INSERT INTO role_permissions (role, permission) VALUES
    ('admin', 'users.read'), ('admin', 'users.write'), ('admin', 'roles.write'),
    ('admin', 'clients.write'), ('admin', 'audit.read'), ('admin', 'settings.write');
