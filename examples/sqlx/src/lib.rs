//! The router of the `sqlx` example: each writing request gets its own
//! SQLite transaction from `provision-sqlx`, committed before the client
//! hears `201`, rolled back on any other outcome.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use provision::{Dep, Error, Lazy, Registry, provide};
use provision_axum::ProvisionLayer;
use provision_sqlx::{Pool, SqliteConn, SqliteTx, into_error};
use sqlx::{Sqlite, SqlitePool};

/// The request's account store: every method writes through the request's
/// one transaction, so a handler's writes stand or fall together.
pub struct Accounts {
    tx: Dep<SqliteTx>,
}

#[provide(Request)]
impl Accounts {
    async fn build(tx: Dep<SqliteTx>) -> Result<Self, Error> {
        Ok(Accounts { tx })
    }
}

impl Accounts {
    /// Creates an account (visible to others once the request commits); a
    /// name already taken is a `409`.
    pub async fn create(&self, name: &str) -> Result<(), Error> {
        let mut conn = self.tx.acquire().await?;
        sqlx::query("INSERT INTO accounts (name) VALUES (?)")
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(into_error)?;
        Ok(())
    }
}

/// A handler's error as `{"error": ...}` with its status (`500` when it
/// has none).
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        ApiError(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = ?self.0, "request failed");
        }
        json_error(status, self.0.message())
    }
}

/// This example's error body: `{"error": message}`.
fn json_error(status: StatusCode, message: &str) -> Response {
    let body = std::collections::HashMap::from([("error", message)]);
    (status, axum::Json(body)).into_response()
}

/// `201` once committed, `409` if the name is taken.
async fn create(
    accounts: Lazy<Accounts>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Built (BEGIN IMMEDIATE) only now, once the path was accepted.
    accounts.get().await?.create(&name).await?;
    Ok(StatusCode::CREATED)
}

/// Writes, then answers `400`: the write is rolled back.
async fn fail(accounts: Lazy<Accounts>, Path(name): Path<String>) -> Result<Response, ApiError> {
    accounts.get().await?.create(&name).await?;
    Ok(json_error(
        StatusCode::BAD_REQUEST,
        "this request fails after writing",
    ))
}

/// Reads committed accounts on a plain connection (no transaction).
async fn list(conn: Lazy<SqliteConn>) -> Result<String, ApiError> {
    let conn = conn.get().await?;
    let mut conn = conn.acquire().await;
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM accounts ORDER BY name")
        .fetch_all(&mut *conn)
        .await
        .map_err(into_error)?;
    Ok(names.join("\n"))
}

/// Creates the schema, then the router and its registry. Serve the router;
/// call [`Registry::shutdown`] once the server has stopped (it closes the
/// pool).
pub async fn app(pool: SqlitePool) -> Result<(Router, Registry), Error> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY)")
        .execute(&pool)
        .await
        .map_err(into_error)?;
    let registry = Registry::builder()
        .supply(Pool::<Sqlite>::new(pool))
        .register::<Accounts>()
        .register::<SqliteConn>()
        .build()
        .await?;
    let router = Router::new()
        .route("/accounts", get(list))
        .route("/accounts/{name}", post(create))
        .route("/fail/{name}", post(fail))
        .layer(ProvisionLayer::new(registry.clone()));
    Ok((router, registry))
}
