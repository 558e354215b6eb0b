//! `GET /api/health` (asks for nothing) and `GET /api/ready` (checks the
//! database).

use axum::Json;
use provision::Lazy;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::services::Conn;

/// The body of health and readiness answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// Liveness. Asks for no service, so it builds nothing and opens no
/// database connection.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "The process is serving", body = Status)))]
pub async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: a round trip to the database. 503 with a JSON error when it
/// cannot be reached.
#[utoipa::path(get, path = "/api/ready", tag = "health",
    responses(
        (status = 200, description = "The database answers", body = Status),
        (status = 503, description = "The database is unavailable", body = super::ErrorBody),
    ))]
pub async fn ready(conn: Lazy<Conn>) -> Result<Json<Status>, ApiError> {
    conn.get().await?.get()?.ping().await?;
    Ok(Json(Status { status: "ready" }))
}
