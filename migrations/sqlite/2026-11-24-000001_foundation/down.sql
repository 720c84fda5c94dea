DROP TABLE audit_events;
DROP TABLE one_time_tokens;
DROP TABLE session_state;
DROP TABLE sessions;
DROP TABLE user_roles;
DROP TABLE role_permissions;
DROP TABLE roles;
DROP TABLE users;
