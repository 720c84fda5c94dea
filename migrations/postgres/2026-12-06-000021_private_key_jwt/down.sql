DROP TABLE client_assertion_jtis;
DROP TABLE client_keys;
ALTER TABLE oauth_clients DROP COLUMN token_endpoint_auth_method;
