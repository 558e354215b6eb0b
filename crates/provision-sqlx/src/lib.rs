//! sqlx services for [provision]: a request's connection ([`Conn`]) and a
//! request's transaction ([`Tx`]) on PostgreSQL and SQLite, leased from
//! the app's [`Pool`] only by the requests that ask for them and returned
//! after the response's last byte.
//!
//! A [`Tx`] commits after the handler answered with a success and *before*
//! the client is told (a commit that fails turns the answer into an error),
//! and rolls back on anything else: an error status, a panic, a client that
//! went away. A streaming body that still holds the transaction does not
//! stop the commit (it happens before the first byte), and the connection
//! stays leased until the last byte.
//!
//! ```
//! use axum::{Router, http::StatusCode, routing::post};
//! use provision::{Dep, Error, Lazy, Registry, provide};
//! use provision_axum::ProvisionLayer;
//! use provision_sqlx::{Pool, SqliteTx};
//! use sqlx::Sqlite;
//!
//! // Your own request service, built on the transaction.
//! struct Audit(Dep<SqliteTx>);
//! #[provide(Request)]
//! impl Audit {
//!     async fn build(tx: Dep<SqliteTx>) -> Result<Self, Error> {
//!         Ok(Audit(tx))
//!     }
//! }
//!
//! // `Lazy`: nothing is leased (no BEGIN) until the handler's body asks.
//! async fn create(audit: Lazy<Audit>) -> Result<StatusCode, String> {
//!     let Dep(audit) = audit.get().await.map_err(|e| e.to_string())?;
//!     let mut conn = audit.0.acquire().await.map_err(|e| e.to_string())?;
//!     sqlx::query("INSERT INTO log (line) VALUES ('created')")
//!         .execute(&mut *conn)
//!         .await
//!         .map_err(|e| e.to_string())?;
//!     Ok(StatusCode::CREATED)
//! }
//!
//! async fn app(pool: sqlx::SqlitePool) -> Result<Router, Error> {
//!     let registry = Registry::builder()
//!         .supply(Pool::<Sqlite>::new(pool))
//!         .register::<Audit>()
//!         .build()
//!         .await?;
//!     Ok(Router::new()
//!         .route("/log", post(create))
//!         .layer(ProvisionLayer::new(registry)))
//! }
//! ```
//!
//! Both services are generic over [`sqlx::Database`]; the aliases name the
//! two this crate is built and tested for. A handler that asks for both
//! `Conn` and `Tx` holds two connections: ask for the one you need.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod conn;
mod error;
mod pool;
mod tx;

pub use conn::Conn;
pub use error::into_error;
pub use pool::Pool;
pub use tx::Tx;

/// A PostgreSQL connection for one request.
#[cfg(feature = "postgres")]
pub type PgConn = Conn<sqlx::Postgres>;
/// A PostgreSQL transaction for one request.
#[cfg(feature = "postgres")]
pub type PgTx = Tx<sqlx::Postgres>;
/// A SQLite connection for one request.
#[cfg(feature = "sqlite")]
pub type SqliteConn = Conn<sqlx::Sqlite>;
/// A SQLite transaction for one request.
#[cfg(feature = "sqlite")]
pub type SqliteTx = Tx<sqlx::Sqlite>;
