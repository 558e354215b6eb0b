-- Who created an account through `POST /api/users` (NULL: the CLI, or a
-- creator since deleted). Its creator may see it: they wrote its name and
-- email, so showing them back discloses nothing. Keep in step with
-- ../sqlite/V2__users_created_by.sql.
ALTER TABLE users ADD COLUMN created_by bigint REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX users_created_by ON users (created_by);
