//! PostgreSQL through tokio-postgres.
//!
//! Every query function takes a plain `&tokio_postgres::Client`, so the same
//! code runs on a pooled connection (a deadpool `Object` derefs to one), on
//! a connection opened for one request, and on Cloudflare Workers over a raw
//! socket. Queries use `query_typed` (parameter types given up front): one
//! round trip per statement and no named prepared statements, which also
//! suits PgBouncer in transaction mode and Hyperdrive.

/// Renders a `timestamptz` column as the API's RFC 3339 text
/// (`2024-05-01T12:00:00.000Z`), byte-for-byte what SQLite stores.
macro_rules! ts {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}

mod connection;
mod error;
pub(crate) mod members;
pub(crate) mod organisations;
pub(crate) mod scopes;
pub(crate) mod sources;
pub(crate) mod tokens;
pub(crate) mod users;

pub use connection::PgConnection;
pub(crate) use connection::from_pg;
pub use error::{map_connect_error, map_error, map_error_ref};

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::domain::Role;
use crate::store::StoreError;

/// A column, with a decoding failure reported as `Internal` (a schema and
/// code mismatch, not the client's fault).
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, StoreError> {
    row.try_get(name)
        .map_err(|_| StoreError::Internal(format!("cannot decode column {name}").into()))
}

pub(crate) fn role_col(row: &Row, name: &str) -> Result<Role, StoreError> {
    col::<&str>(row, name)?
        .parse()
        .map_err(|_| StoreError::Internal("unknown role in the database".into()))
}
