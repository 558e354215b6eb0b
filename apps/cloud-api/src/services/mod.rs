//! The service's provision services, one per file, named for what they hold:
//!
//! | service | lifetime | holds |
//! |---|---|---|
//! | [`Settings`](crate::settings::Settings) | app | configuration (supplied) |
//! | [`Metrics`](crate::metrics::Metrics) | app | Prometheus metrics (supplied) |
//! | [`Db`] | app | the pool, the per-request connect config, or SQLite |
//! | [`Conn`] | request | one connection, leased or opened on first use |
//! | [`Tx`] | request | a write transaction on that connection |
//! | [`Authorization`] | request | the `Authorization` header (seeded by `SignedIn`) |
//! | [`BearerToken`] | request | the request's token, checked for shape |
//! | [`Authenticated`] | request | the caller behind the bearer token |
//!
//! A handler asks for what it needs: a read asks for `Conn`, a write for
//! `Tx`, a protected route for `Authenticated`. `GET /api/health` asks for
//! nothing and opens no connection.

mod authenticated;
mod authorization;
mod conn;
pub(crate) mod db;
mod tx;

pub use authenticated::{Authenticated, BearerToken};
pub use authorization::Authorization;
pub use conn::Conn;
pub use db::Db;
pub use tx::Tx;

use http::StatusCode;

use crate::store::StoreError;

/// A store failure as a provision error, with the status a client should
/// get. Messages of `Unavailable` and `Internal` are replaced: they are for
/// logs, not clients. `Misconfigured` keeps its message: it says which
/// setting to change.
pub(crate) fn store_error(error: StoreError) -> provision::Error {
    let (status, message) = match &error {
        StoreError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
        StoreError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
        StoreError::Invalid(m) => (StatusCode::BAD_REQUEST, m.clone()),
        StoreError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; try again shortly".to_owned(),
        ),
        StoreError::Misconfigured(m) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
        StoreError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error".to_owned(),
        ),
    };
    if status.is_server_error() {
        tracing::warn!(%error, "database operation failed");
    }
    provision::Error::with_source(message, error).with_status(status)
}
