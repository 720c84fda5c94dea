DELETE FROM role_permissions WHERE permission = 'groups.write';
DROP TABLE user_groups;
DROP TABLE groups;
