//! Sources on PostgreSQL. Every statement is filtered by scope, so a source
//! id from another scope is simply not found.

use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::{col, map_error};
use crate::domain::{NewSource, Source, SourceKind, SourcePatch};
use crate::store::StoreError;

macro_rules! source_columns {
    () => {
        concat!(
            "id, scope_id, name, kind, url, config, ",
            ts!("created_at"),
            " AS created_at, ",
            ts!("updated_at"),
            " AS updated_at"
        )
    };
}

fn source_from_row(row: &Row) -> Result<Source, StoreError> {
    let kind: String = col(row, "kind")?;
    Ok(Source {
        id: col(row, "id")?,
        scope_id: col(row, "scope_id")?,
        name: col(row, "name")?,
        kind: kind
            .parse::<SourceKind>()
            .map_err(|_| StoreError::Internal("unknown source kind in the database".into()))?,
        url: col(row, "url")?,
        config: col(row, "config")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

pub(crate) async fn list(client: &Client, scope_id: i64) -> Result<Vec<Source>, StoreError> {
    let rows = client
        .query_typed(
            concat!(
                "SELECT ",
                source_columns!(),
                " FROM sources WHERE scope_id = $1 ORDER BY id"
            ),
            &[(&scope_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    rows.iter().map(source_from_row).collect()
}

pub(crate) async fn get(client: &Client, scope_id: i64, id: i64) -> Result<Source, StoreError> {
    let row = client
        .query_typed_opt(
            concat!(
                "SELECT ",
                source_columns!(),
                " FROM sources WHERE id = $1 AND scope_id = $2"
            ),
            &[(&id, Type::INT8), (&scope_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    source_from_row(&row)
}

pub(crate) async fn create(
    client: &Client,
    scope_id: i64,
    new: &NewSource,
) -> Result<Source, StoreError> {
    new.validate()?;
    let row = client
        .query_typed_one(
            concat!(
                "INSERT INTO sources (scope_id, name, kind, url, config) ",
                "VALUES ($1, $2, $3, $4, $5) RETURNING ",
                source_columns!()
            ),
            &[
                (&scope_id, Type::INT8),
                (&new.name, Type::TEXT),
                (&new.kind.as_str(), Type::TEXT),
                (&new.url, Type::TEXT),
                (&new.config, Type::JSONB),
            ],
        )
        .await
        .map_err(map_error)?;
    source_from_row(&row)
}

pub(crate) async fn update(
    client: &Client,
    scope_id: i64,
    id: i64,
    patch: &SourcePatch,
) -> Result<Source, StoreError> {
    patch.validate()?;
    if patch.is_empty() {
        return get(client, scope_id, id).await;
    }
    let kind = patch.kind.map(SourceKind::as_str);
    let row = client
        .query_typed_opt(
            concat!(
                "UPDATE sources SET name = COALESCE($3, name), kind = COALESCE($4, kind), ",
                "url = COALESCE($5, url), config = COALESCE($6, config), updated_at = now() ",
                "WHERE id = $1 AND scope_id = $2 RETURNING ",
                source_columns!()
            ),
            &[
                (&id, Type::INT8),
                (&scope_id, Type::INT8),
                (&patch.name, Type::TEXT),
                (&kind, Type::TEXT),
                (&patch.url, Type::TEXT),
                (&patch.config as &Option<Value>, Type::JSONB),
            ],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    source_from_row(&row)
}

pub(crate) async fn delete(client: &Client, scope_id: i64, id: i64) -> Result<(), StoreError> {
    client
        .query_typed_opt(
            "DELETE FROM sources WHERE id = $1 AND scope_id = $2 RETURNING id",
            &[(&id, Type::INT8), (&scope_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .map(drop)
        .ok_or(StoreError::NotFound)
}
