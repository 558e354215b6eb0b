//! API tokens on SQLite.

use rusqlite::{OptionalExtension, params};

use super::users::user_from_row;
use crate::domain::token::{
    format_token, generate_secret, hash_secret, parse_token, secret_matches,
};
use crate::domain::{IssuedToken, User};
use crate::store::StoreError;

pub(crate) fn create(db: &rusqlite::Connection, user_id: i64) -> Result<IssuedToken, StoreError> {
    let secret = generate_secret()
        .map_err(|_| StoreError::Internal("no randomness for a token secret".into()))?;
    let (id, created_at): (i64, String) = db
        .prepare_cached(
            "INSERT INTO api_tokens (user_id, hash) VALUES (?1, ?2) RETURNING id, created_at",
        )?
        .query_row(params![user_id, hash_secret(&secret)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(IssuedToken {
        id,
        token: format_token(id, &secret),
        created_at,
    })
}

pub(crate) fn resolve(db: &rusqlite::Connection, token: &str) -> Result<Option<User>, StoreError> {
    let Some((id, secret)) = parse_token(token) else {
        return Ok(None);
    };
    let found = db
        .prepare_cached(
            "SELECT t.hash, u.id, u.name, u.email, u.created_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
        )?
        .query_row([id], |row| {
            Ok((row.get::<_, String>("hash")?, user_from_row(row)?))
        })
        .optional()?;
    Ok(found.and_then(|(stored, user)| secret_matches(secret, &stored).then_some(user)))
}

pub(crate) fn delete_older_than(db: &rusqlite::Connection, days: i32) -> Result<u64, StoreError> {
    // `created_at` is ISO 8601 text in one format, so text order is time
    // order.
    let deleted = db
        .prepare_cached(
            "DELETE FROM api_tokens \
             WHERE created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d days', ?1))",
        )?
        .execute([days])?;
    Ok(deleted as u64)
}

pub(crate) fn revoke(
    db: &rusqlite::Connection,
    user_id: i64,
    token_id: i64,
) -> Result<(), StoreError> {
    let deleted = db
        .prepare_cached("DELETE FROM api_tokens WHERE id = ?1 AND user_id = ?2")?
        .execute([token_id, user_id])?;
    if deleted == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
