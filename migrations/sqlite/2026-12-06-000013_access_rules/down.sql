DELETE FROM role_permissions WHERE permission = 'policies.write';
DROP TABLE access_rules;
