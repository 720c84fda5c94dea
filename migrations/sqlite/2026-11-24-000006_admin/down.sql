DROP TABLE settings;
DROP INDEX users_name_search;
ALTER TABLE users DROP COLUMN name_search;
