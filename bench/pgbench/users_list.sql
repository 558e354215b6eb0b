-- GET /api/users?limit=10: what both servers send, statement for statement
-- (cloud-api store/postgres/tokens.rs resolve, members.rs caller,
-- users.rs list). Run with -M extended (unnamed statements, as
-- tokio-postgres' query_typed) and -D token_id=.. -D user_id=.. -D fmt=..
-- The to_char format travels as a parameter (-D fmt='YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'):
-- pgbench would take the `:MI` and `:SS` of the literal for variables.
SELECT t.hash, u.id, u.name, u.email, to_char(u.created_at AT TIME ZONE 'UTC', :fmt) AS created_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = :token_id;
SELECT org_id, role FROM memberships WHERE user_id = :user_id ORDER BY org_id;
SELECT id, name, email, to_char(created_at AT TIME ZONE 'UTC', :fmt) AS created_at, count(*) OVER () AS total FROM users WHERE (id = :user_id OR created_by = :user_id OR id IN (SELECT theirs.user_id FROM memberships mine JOIN memberships theirs ON theirs.org_id = mine.org_id WHERE mine.user_id = :user_id)) ORDER BY id LIMIT 10 OFFSET 0;
