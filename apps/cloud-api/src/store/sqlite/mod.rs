//! SQLite through rusqlite: the zero-setup default.
//!
//! rusqlite is blocking, and a write may wait up to the busy timeout for
//! another writer, so every call runs on tokio's blocking pool
//! (`spawn_blocking`) rather than on a request's async worker thread.
//! `block_in_place` would save a thread hop but panics on a current-thread
//! runtime, which tests and Workers-style hosts use.

mod busy;
mod connection;
mod error;
pub(crate) mod members;
pub(crate) mod organisations;
mod pool;
pub(crate) mod scopes;
pub(crate) mod sources;
pub(crate) mod tokens;
pub(crate) mod users;

pub use connection::SqliteConnection;
pub use error::map_error;
pub use pool::SqlitePool;

use rusqlite::Row;
use rusqlite::types::Type;

use crate::domain::Role;

pub(crate) fn role_col(row: &Row<'_>, name: &str) -> rusqlite::Result<Role> {
    let text: String = row.get(name)?;
    text.parse().map_err(|e| {
        let index = row.as_ref().column_index(name).unwrap_or(0);
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))
    })
}

/// Runs `f` in the caller's transaction if one is open, else in its own
/// IMMEDIATE one (taking the write lock up front, so the reads inside
/// cannot go stale before the write).
pub(crate) fn atomic<T>(
    db: &mut rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, crate::store::StoreError>,
) -> Result<T, crate::store::StoreError> {
    if !db.is_autocommit() {
        return f(db);
    }
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Dropping `tx` on the error path rolls it back.
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}
