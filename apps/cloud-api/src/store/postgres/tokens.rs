//! API tokens on PostgreSQL.

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::users::user_from_row;
use super::{col, map_error};
use crate::domain::token::{
    format_token, generate_secret, hash_secret, parse_token, secret_matches,
};
use crate::domain::{IssuedToken, User};
use crate::store::StoreError;

pub(crate) async fn create(client: &Client, user_id: i64) -> Result<IssuedToken, StoreError> {
    let secret = generate_secret()
        .map_err(|_| StoreError::Internal("no randomness for a token secret".into()))?;
    let row = client
        .query_typed_one(
            concat!(
                "INSERT INTO api_tokens (user_id, hash) VALUES ($1, $2) RETURNING id, ",
                ts!("created_at"),
                " AS created_at"
            ),
            &[(&user_id, Type::INT8), (&hash_secret(&secret), Type::TEXT)],
        )
        .await
        .map_err(map_error)?;
    let id: i64 = col(&row, "id")?;
    Ok(IssuedToken {
        id,
        token: format_token(id, &secret),
        created_at: col(&row, "created_at")?,
    })
}

pub(crate) async fn resolve(client: &Client, token: &str) -> Result<Option<User>, StoreError> {
    let Some((id, secret)) = parse_token(token) else {
        return Ok(None);
    };
    let row = client
        .query_typed_opt(
            concat!(
                "SELECT t.hash, u.id, u.name, u.email, ",
                ts!("u.created_at"),
                " AS created_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
            ),
            &[(&id, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = col(&row, "hash")?;
    if !secret_matches(secret, &stored) {
        return Ok(None);
    }
    user_from_row(&row).map(Some)
}

pub(crate) async fn delete_older_than(client: &Client, days: i32) -> Result<u64, StoreError> {
    client
        .execute_typed(
            "DELETE FROM api_tokens WHERE created_at < now() - make_interval(days => $1)",
            &[(&days, Type::INT4)],
        )
        .await
        .map_err(map_error)
}

pub(crate) async fn revoke(client: &Client, user_id: i64, token_id: i64) -> Result<(), StoreError> {
    client
        .query_typed_opt(
            "DELETE FROM api_tokens WHERE id = $1 AND user_id = $2 RETURNING id",
            &[(&token_id, Type::INT8), (&user_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .map(drop)
        .ok_or(StoreError::NotFound)
}
