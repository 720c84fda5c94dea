-- Admin user search: a lower-cased copy of the display name, searched by prefix like
-- email_normalized (both through an index, so it stays fast with many users).
ALTER TABLE users ADD COLUMN name_search TEXT NOT NULL DEFAULT '';
UPDATE users SET name_search = lower(coalesce(display_name, ''));
CREATE INDEX users_name_search ON users(name_search);

-- Runtime settings changed on /admin/settings; a missing key means the configured value.
CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
