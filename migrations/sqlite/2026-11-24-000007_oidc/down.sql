DROP TABLE consents;
DROP TABLE auth_codes;
DROP TABLE signing_keys;
DROP TABLE oauth_clients;
