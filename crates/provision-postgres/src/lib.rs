//! Ready-made PostgreSQL services for provision, over tokio-postgres.
//!
//! | service | lifetime | what |
//! |---|---|---|
//! | [`Postgres`] | app (supplied) | a deadpool pool, the config to connect per request, or a host's [`Connect`]; one setting ([`Mode`]) chooses |
//! | [`PgConn`] | request | one [`PgConnection`], made on first ask, [`RequestBound`](provision::RequestBound), released after the last byte |
//! | [`PgTx`] | request | a transaction on it: `BEGIN` on first ask, `COMMIT` in `settle` on success (before the first byte), `ROLLBACK` otherwise |
//!
//! Bounds, all safe behind a transaction-mode pooler (PgBouncer, Hyperdrive):
//! getting a connection (waiting, connecting, retrying transient failures
//! with backoff) takes at most the acquire timeout; each statement at most
//! the statement timeout, enforced by the server inside transactions
//! (`SET LOCAL`, never a session `SET` or a startup parameter) and by the
//! client for every statement (the statement is cancelled and the
//! connection closed, never reused). Failures are [`PgError`]s, which carry
//! their HTTP status (`503` for unavailable and timed out).
//!
//! ```no_run
//! use axum::{Router, http::StatusCode, routing::post};
//! use provision::{Error, Lazy, Registry};
//! use provision_axum::ProvisionLayer;
//! use provision_postgres::{PgOptions, PgTx, Postgres};
//!
//! // `Lazy`: BEGIN only once the handler's body runs, after every argument
//! // was accepted, so a request refused for bad input opens nothing.
//! async fn create(tx: Lazy<PgTx>) -> Result<StatusCode, Error> {
//!     let tx = tx.get().await?;
//!     tx.get()?.execute("INSERT INTO notes (body) VALUES ('hi')", &[]).await?;
//!     Ok(StatusCode::CREATED)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::builder()
//!     .supply(Postgres::new("postgres://app@127.0.0.1/app", PgOptions::default())?)
//!     .register::<PgTx>()
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/notes", post(create))
//!     .layer(ProvisionLayer::new(registry.clone()));
//! # Ok(()) }
//! ```
//!
//! Features: `tokio` (default) for native servers; `axum` (default) makes
//! [`PgError`] a response; `js` for
//! `wasm32-unknown-unknown`, where there is no pool and the host connects
//! each request through [`Connect`] and supplies a [`Timer`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(any(feature = "tokio", feature = "js"))]
mod cancel;
mod conn;
mod connect;
mod connection;
mod database;
mod error;
mod mode;
mod options;
mod retry;
mod timer;
mod tx;

#[cfg(any(feature = "tokio", feature = "js"))]
pub use cancel::cancel_and_wait_for_close;
pub use conn::PgConn;
pub use connect::{Connect, Connected, Connecting};
pub use connection::{Closing, PgConnection};
pub use database::Postgres;
pub use error::{ErrorKind, PgError};
pub use mode::Mode;
pub use options::PgOptions;
pub use provision::Timer;
#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use tokio_postgres;
pub use tx::PgTx;
