-- Groups of users, for access rules (`group:NAME`), forward auth's Remote-Groups and
-- the OIDC `groups` claim. A group may sit inside a parent group: a member of the
-- child is also a member of every group above it.
CREATE TABLE groups (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    parent_id TEXT REFERENCES groups(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX groups_parent ON groups(parent_id);

CREATE TABLE user_groups (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups(group_id);

-- Administrators hold every permission, the new one too.
INSERT INTO role_permissions (role, permission) VALUES ('admin', 'groups.write');
