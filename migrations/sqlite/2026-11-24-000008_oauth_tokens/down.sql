ALTER TABLE oauth_clients DROP COLUMN id_token_alg;
DROP TABLE revoked_access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE oauth_grants;
