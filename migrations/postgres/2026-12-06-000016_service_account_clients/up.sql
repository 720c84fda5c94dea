-- Client credentials of a service account: a confidential client that may use only
-- client_credentials and whose tokens name the service account (its users row) as
-- `sub`. Deleting the service account deletes its clients.
ALTER TABLE oauth_clients ADD COLUMN service_account_id TEXT NULL REFERENCES users(id) ON DELETE CASCADE;
