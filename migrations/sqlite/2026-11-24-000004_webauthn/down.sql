DROP TABLE webauthn_credentials;
