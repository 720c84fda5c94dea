ALTER TABLE oauth_clients DROP COLUMN require_two_factor;
ALTER TABLE oauth_clients DROP COLUMN allowed_groups;
