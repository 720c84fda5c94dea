DROP INDEX users_owner_group;
ALTER TABLE users DROP COLUMN owner_group_id;
ALTER TABLE users DROP COLUMN kind;
