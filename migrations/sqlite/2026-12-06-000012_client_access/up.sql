-- Who may use an app: `allowed_groups` is a JSON array of group names, like the
-- client's redirect URIs (empty: every account); members of a group inside an allowed
-- group are allowed too. `require_two_factor` asks for a session proven with a
-- second factor before a code is issued.
ALTER TABLE oauth_clients ADD COLUMN allowed_groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE oauth_clients ADD COLUMN require_two_factor BOOLEAN NOT NULL DEFAULT 0;
