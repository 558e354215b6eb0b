-- POST /api/users: token, memberships, then BEGIN, the insert (users.rs
-- create), COMMIT. The email is unique per transaction (client id and a
-- random 62-bit number).
\set r random(1, 4611686018427387903)
SELECT t.hash, u.id, u.name, u.email, to_char(u.created_at AT TIME ZONE 'UTC', :fmt) AS created_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = :token_id;
SELECT org_id, role FROM memberships WHERE user_id = :user_id ORDER BY org_id;
BEGIN;
INSERT INTO users (name, email, created_by) VALUES ('Bench pgbench', 'pgb-' || :client_id::text || '-' || :r::text || '@bench.example', :user_id) RETURNING id, name, email, to_char(created_at AT TIME ZONE 'UTC', :fmt) AS created_at;
COMMIT;
