-- Where an app may be used from: a JSON array of networks (CIDR or single
-- addresses); empty: anywhere. Checked against the browser's address at authorize.
ALTER TABLE oauth_clients ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '[]';
