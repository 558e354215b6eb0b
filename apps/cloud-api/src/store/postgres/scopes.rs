//! Scopes on PostgreSQL.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::{col, map_error};
use crate::domain::Scope;
use crate::store::StoreError;

fn scope_from_row(row: &Row) -> Result<Scope, StoreError> {
    Ok(Scope::new(
        col(row, "id")?,
        col(row, "org_id")?,
        col(row, "user_id")?,
        col(row, "name")?,
    ))
}

/// The org scope of every organisation the user belongs to and the user's
/// own scope in each, org scope first.
pub(crate) async fn of_user(client: &Client, user_id: i64) -> Result<Vec<Scope>, StoreError> {
    let rows = client
        .query_typed(
            "SELECT s.id, s.org_id, s.user_id, o.name FROM scopes s \
             JOIN memberships m ON m.org_id = s.org_id AND m.user_id = $1 \
             JOIN organisations o ON o.id = s.org_id \
             WHERE s.user_id IS NULL OR s.user_id = $1 \
             ORDER BY s.org_id, s.user_id IS NOT NULL, s.id",
            &[(&user_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    rows.iter().map(scope_from_row).collect()
}

pub(crate) async fn get(client: &Client, scope_id: i64) -> Result<Scope, StoreError> {
    let row = client
        .query_typed_opt(
            "SELECT s.id, s.org_id, s.user_id, o.name FROM scopes s \
             JOIN organisations o ON o.id = s.org_id WHERE s.id = $1",
            &[(&scope_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    scope_from_row(&row)
}
