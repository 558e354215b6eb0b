//! Scopes and their sources. Every read and write is checked against the
//! caller's memberships; another organisation's scope or source is a 404.

use axum::Json;
use http::StatusCode;
use provision::Lazy;

use super::extract::{self, Path};
use super::{ApiError, ErrorBody, SignedIn};
use crate::domain::access::check_scope;
use crate::domain::{Action, NewSource, Scope, Source, SourcePatch};
use crate::services::{Authenticated, Conn, Tx};
use crate::store::Connection;

/// The scope, if the caller may do `action` to its sources.
async fn scope_for(
    me: &Authenticated,
    connection: &Connection,
    scope_id: i64,
    action: Action,
) -> Result<Scope, ApiError> {
    // An unknown id and another organisation's scope give the same 404, so
    // an outsider cannot tell a scope id is in use.
    let scope = connection
        .get_scope(scope_id)
        .await
        .map_err(|e| ApiError::store(e, "scope"))?;
    check_scope(&me.caller, &scope, action).map_err(|e| ApiError::access(e, "scope"))?;
    Ok(scope)
}

/// The caller's scopes: each organisation's org scope and their own user
/// scope in it.
///
/// A list route: the list routes share at most `--list-connections`
/// database connections at once (in pool mode, half the pool by default), so that a
/// burst of lists leaves connections for single reads and writes; a list
/// that gets none in time (twice the acquire timeout) is answered 503.
#[utoipa::path(get, path = "/api/scopes", tag = "scopes", security(("bearer" = [])),
    responses((status = 503, description = "The database is unavailable, or no connection of the list routes' share (`--list-connections`) came free in time (twice the acquire timeout)", body = ErrorBody),
        (status = 200, body = Vec<Scope>), (status = 401, body = ErrorBody)))]
pub async fn list_scopes(me: SignedIn, conn: Lazy<Conn>) -> Result<Json<Vec<Scope>>, ApiError> {
    let me = me.get().await?;
    let conn = conn.get().await?;
    Ok(Json(conn.get()?.scopes_of_user(me.user.id).await?))
}

/// The sources of a scope.
///
/// A list route: the list routes share at most `--list-connections`
/// database connections at once (in pool mode, half the pool by default), so that a
/// burst of lists leaves connections for single reads and writes; a list
/// that gets none in time (twice the acquire timeout) is answered 503.
#[utoipa::path(get, path = "/api/scopes/{scope_id}/sources", tag = "sources",
    params(("scope_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 503, description = "The database is unavailable, or no connection of the list routes' share (`--list-connections`) came free in time (twice the acquire timeout)", body = ErrorBody),
        (status = 200, body = Vec<Source>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    Path(scope_id): Path<i64>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<Vec<Source>>, ApiError> {
    let me = me.get().await?;
    let conn = conn.get().await?;
    let connection = conn.get()?;
    let scope = scope_for(&me, connection, scope_id, Action::Read).await?;
    Ok(Json(connection.list_sources(scope.id).await?))
}

/// Registers a source in a scope. 409 if the name is taken in that scope.
///
/// Disconnect policy: `finish` (within 30 s): a client that goes away
/// after sending this does not undo it; the write completes and commits.
/// Safe to finish because a retry cannot duplicate it: a name is
/// unique in its scope, so the retry is a 409.
#[utoipa::path(post, path = "/api/scopes/{scope_id}/sources", tag = "sources",
    params(("scope_id" = i64, Path)), request_body = NewSource, security(("bearer" = [])),
    responses((status = 413, description = "The body is too large", body = ErrorBody), (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 201, body = Source), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    Path(scope_id): Path<i64>,
    me: SignedIn,
    tx: Lazy<Tx>,
    extract::Json(new): extract::Json<NewSource>,
) -> Result<(StatusCode, Json<Source>), ApiError> {
    let me = me.get().await?;
    let tx = tx.get().await?;
    let connection = tx.get()?;
    let scope = scope_for(&me, connection, scope_id, Action::Write).await?;
    let source = connection.create_source(scope.id, &new).await?;
    Ok((StatusCode::CREATED, Json(source)))
}

/// One source.
#[utoipa::path(get, path = "/api/scopes/{scope_id}/sources/{source_id}", tag = "sources",
    params(("scope_id" = i64, Path), ("source_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 200, body = Source), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    Path((scope_id, source_id)): Path<(i64, i64)>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<Source>, ApiError> {
    let me = me.get().await?;
    let conn = conn.get().await?;
    let connection = conn.get()?;
    let scope = scope_for(&me, connection, scope_id, Action::Read).await?;
    let source = connection.get_source(scope.id, source_id).await;
    Ok(Json(source.map_err(|e| ApiError::store(e, "source"))?))
}

/// Changes some of a source's fields.
///
/// Disconnect policy: `finish` (within 30 s): a client that goes away
/// after sending this does not undo it; the write completes and commits.
/// Safe to finish because a retry cannot duplicate it: the same
/// change applied twice leaves the same source.
#[utoipa::path(patch, path = "/api/scopes/{scope_id}/sources/{source_id}", tag = "sources",
    params(("scope_id" = i64, Path), ("source_id" = i64, Path)), request_body = SourcePatch,
    security(("bearer" = [])),
    responses((status = 413, description = "The body is too large", body = ErrorBody), (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 200, body = Source), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    Path((scope_id, source_id)): Path<(i64, i64)>,
    me: SignedIn,
    tx: Lazy<Tx>,
    extract::Json(patch): extract::Json<SourcePatch>,
) -> Result<Json<Source>, ApiError> {
    let me = me.get().await?;
    let tx = tx.get().await?;
    let connection = tx.get()?;
    let scope = scope_for(&me, connection, scope_id, Action::Write).await?;
    let source = connection.update_source(scope.id, source_id, &patch).await;
    Ok(Json(source.map_err(|e| ApiError::store(e, "source"))?))
}

/// Deletes a source.
///
/// Disconnect policy: `finish` (within 30 s): a client that goes away
/// after sending this does not undo it; the write completes and commits.
/// Safe to finish because a retry cannot duplicate it: the retry
/// of a deletion finds nothing to delete (404).
#[utoipa::path(delete, path = "/api/scopes/{scope_id}/sources/{source_id}", tag = "sources",
    params(("scope_id" = i64, Path), ("source_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    Path((scope_id, source_id)): Path<(i64, i64)>,
    me: SignedIn,
    tx: Lazy<Tx>,
) -> Result<StatusCode, ApiError> {
    let me = me.get().await?;
    let tx = tx.get().await?;
    let connection = tx.get()?;
    let scope = scope_for(&me, connection, scope_id, Action::Write).await?;
    let deleted = connection.delete_source(scope.id, source_id).await;
    deleted.map_err(|e| ApiError::store(e, "source"))?;
    Ok(StatusCode::NO_CONTENT)
}
