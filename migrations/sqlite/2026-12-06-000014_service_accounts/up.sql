-- Service accounts: non-human principals for scripts and services. They are rows of
-- `users` (so personal tokens, forward auth and the audit log treat them as any
-- account) with `kind = 'service'`, no password, a synthetic NAME@service.invalid
-- address that is never mailed, and an owner group whose members they count as for
-- access rules. Every sign-in path refuses them (`repo::users`: only 'person' signs in).
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person';
ALTER TABLE users ADD COLUMN owner_group_id TEXT REFERENCES groups(id);
CREATE INDEX users_owner_group ON users(owner_group_id);
