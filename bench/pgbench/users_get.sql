-- GET /api/users/{id}: token, memberships, the user (users.rs get).
SELECT t.hash, u.id, u.name, u.email, to_char(u.created_at AT TIME ZONE 'UTC', :fmt) AS created_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = :token_id;
SELECT org_id, role FROM memberships WHERE user_id = :user_id ORDER BY org_id;
SELECT id, name, email, to_char(created_at AT TIME ZONE 'UTC', :fmt) AS created_at FROM users WHERE id = :get_id AND (id = :user_id OR created_by = :user_id OR id IN (SELECT theirs.user_id FROM memberships mine JOIN memberships theirs ON theirs.org_id = mine.org_id WHERE mine.user_id = :user_id));
