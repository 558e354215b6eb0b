//! The router of the `postgres` example: notes stored in PostgreSQL through
//! `provision-postgres`. A write asks for `PgTx` (committed before the
//! client hears `201`), a read for `PgConn`, and health for nothing (it
//! opens no connection). Handlers take them as `Lazy<T>`: nothing is opened
//! until the handler's body asks, after every argument has been accepted.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use provision::{Error, Lazy, Registry};
use provision_axum::ProvisionLayer;
use provision_postgres::{PgConn, PgTx, Postgres};
use serde_json::{Value, json};

/// The table the example uses; run once at startup.
pub const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, body text NOT NULL UNIQUE)";

/// Stores a note: `201` once committed, `409` if the same note exists.
async fn create(tx: Lazy<PgTx>, body: String) -> Result<(StatusCode, Json<Value>), Error> {
    let tx = tx.get().await?; // BEGIN here
    let row = tx
        .get()?
        .query_one(
            "INSERT INTO notes (body) VALUES ($1) RETURNING id",
            &[&body],
        )
        .await?;
    let id: i64 = row.get(0);
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "body": body }))))
}

/// Every committed note, oldest first.
async fn list(conn: Lazy<PgConn>) -> Result<Json<Value>, Error> {
    let conn = conn.get().await?;
    let rows = conn
        .get()?
        .query("SELECT id, body FROM notes ORDER BY id", &[])
        .await?;
    let notes: Vec<Value> = rows
        .iter()
        .map(|row| json!({ "id": row.get::<_, i64>(0), "body": row.get::<_, String>(1) }))
        .collect();
    Ok(Json(json!({ "notes": notes })))
}

/// Writes, then answers `422`: the write is rolled back, never seen.
async fn draft(tx: Lazy<PgTx>, Path(body): Path<String>) -> Result<StatusCode, Error> {
    tx.get()
        .await?
        .get()?
        .execute("INSERT INTO notes (body) VALUES ($1)", &[&body])
        .await?;
    Ok(StatusCode::UNPROCESSABLE_ENTITY)
}

async fn health() -> &'static str {
    "ok"
}

/// Creates the table, then the router and its registry around `database`.
/// Serve the router; call [`Registry::shutdown`] once the server stopped.
pub async fn app(database: Postgres) -> Result<(Router, Registry), Error> {
    let setup = database.acquire().await?;
    setup.batch_execute(SCHEMA).await?;
    setup.close().await;
    let registry = Registry::builder()
        .supply(database)
        .register::<PgTx>()
        .build()
        .await?;
    let router = Router::new()
        .route("/health", get(health))
        .route("/notes", get(list).post(create))
        .route("/drafts/{body}", post(draft))
        .layer(ProvisionLayer::new(registry.clone()));
    Ok((router, registry))
}
