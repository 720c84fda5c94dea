ALTER TABLE oauth_clients DROP COLUMN service_account_id;
