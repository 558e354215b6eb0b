//! Turning tokio-postgres and deadpool errors into [`StoreError`]s.
//!
//! The server's message text is never copied: it can quote values from
//! other rows (`Key (email)=(...) already exists`). Only the SQLSTATE and,
//! for unique violations, the table name are used. The driver's error is
//! kept as the `source` of an `Unavailable` or `Internal` error, for logs
//! and startup failures: there it is what an operator needs to know.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

use crate::store::error::{StoreError, unique_violation};

/// Maps an error from a query on an established connection.
pub fn map_error(e: tokio_postgres::Error) -> StoreError {
    map_error_ref(&e).caused_by(e)
}

/// Like [`map_error`], borrowing, so without the driver's error as source.
pub fn map_error_ref(e: &tokio_postgres::Error) -> StoreError {
    if e.is_closed() {
        return StoreError::Unavailable("the database connection was lost".into());
    }
    if let Some(db) = e.as_db_error() {
        return map_sqlstate(db.code(), db.table());
    }
    if is_io_error(e) {
        return StoreError::Unavailable("cannot reach the database".into());
    }
    StoreError::Internal(format!("database client error: {e}").into())
}

/// Maps an error from establishing a connection: whatever went wrong (refused,
/// timed out, bad password, no such database), the service cannot reach its
/// database, which is a 503, not a 500.
pub fn map_connect_error(e: &tokio_postgres::Error) -> StoreError {
    match map_error_ref(e) {
        StoreError::Internal(_) => StoreError::Unavailable("cannot connect to the database".into()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m),
        _ => StoreError::Unavailable("the database refused the connection".into()),
    }
}

fn map_sqlstate(code: &SqlState, table: Option<&str>) -> StoreError {
    let code = code.code();
    let class = &code[..2.min(code.len())];
    match (class, code) {
        (_, "23505") => unique_violation(table),
        // Our foreign keys all point at the thing a write is attached to (a
        // user, an organisation, a scope): its absence is a 404.
        (_, "23503") => StoreError::NotFound,
        (_, "23502" | "23514") => {
            StoreError::Invalid("a value violates a database constraint".into())
        }
        ("22", _) => StoreError::Invalid("a value is malformed or out of range".into()),
        // Serialization failures, deadlocks and cancelled statements are
        // transient: worth a retry, so not a 500.
        (_, "40001" | "40P01" | "55P03" | "57014") => {
            StoreError::Unavailable("the database is busy, try again".into())
        }
        // Connection exceptions, admin/crash shutdown, insufficient resources
        // (too many connections), authentication.
        ("08" | "57" | "53" | "28", _) | (_, "3D000") => {
            StoreError::Unavailable("the database is unavailable".into())
        }
        _ => StoreError::Internal(format!("database error (SQLSTATE {code})").into()),
    }
}

fn is_io_error(e: &tokio_postgres::Error) -> bool {
    let mut source = e.source();
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(code: &str, table: Option<&str>) -> StoreError {
        map_sqlstate(&SqlState::from_code(code), table)
    }

    #[test]
    fn sqlstates() {
        assert_eq!(
            map("23505", Some("users")),
            StoreError::Conflict("a user with this email already exists".into())
        );
        assert!(
            matches!(map("23505", Some("sources")), StoreError::Conflict(m) if m.contains("source"))
        );
        assert_eq!(map("23503", None), StoreError::NotFound);
        assert!(matches!(map("23514", None), StoreError::Invalid(_)));
        assert!(matches!(map("22P02", None), StoreError::Invalid(_)));
        for unavailable in [
            "08006", "08001", "57P01", "57P03", "53300", "28P01", "3D000", "40001",
        ] {
            assert!(
                matches!(map(unavailable, None), StoreError::Unavailable(_)),
                "{unavailable}"
            );
        }
        assert_eq!(
            map("42P01", None),
            StoreError::Internal("database error (SQLSTATE 42P01)".into())
        );
    }
}
