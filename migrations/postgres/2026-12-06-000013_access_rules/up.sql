-- Access rules added on /admin/policies; they follow those of the configuration file.
-- `spec` is the rule as JSON, in the configuration's own form.
CREATE TABLE access_rules (
    id TEXT PRIMARY KEY NOT NULL,
    position BIGINT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Administrators hold every permission, the new one too.
INSERT INTO role_permissions (role, permission) VALUES ('admin', 'policies.write');
