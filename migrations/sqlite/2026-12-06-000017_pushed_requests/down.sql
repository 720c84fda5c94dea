ALTER TABLE oauth_clients DROP COLUMN require_par;
DROP TABLE pushed_requests;
