//! Turning rusqlite errors into [`StoreError`]s.
//!
//! SQLite's message text is only used to find the table of a unique
//! violation; it is never passed on.

use rusqlite::ffi;

use crate::store::error::{StoreError, unique_violation};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        map_error(&e).caused_by(e)
    }
}

/// Maps a rusqlite error.
pub fn map_error(e: &rusqlite::Error) -> StoreError {
    use ffi::ErrorCode;
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(err, message) => match err.code {
            ErrorCode::ConstraintViolation => match err.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    unique_violation(message.as_deref().and_then(table_of_unique_violation))
                }
                // As on Postgres: a missing user, organisation or scope.
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound,
                _ => StoreError::Invalid("a value violates a database constraint".into()),
            },
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                StoreError::Unavailable("the database is busy, try again".into())
            }
            ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::OutOfMemory => {
                StoreError::Unavailable("the database is unavailable".into())
            }
            code => StoreError::Internal(format!("sqlite error ({code:?})").into()),
        },
        _ => StoreError::Internal("sqlite client error".into()),
    }
}

/// `"UNIQUE constraint failed: users.email"` → `"users"`.
fn table_of_unique_violation(message: &str) -> Option<&str> {
    let columns = message.split_once("failed: ")?.1;
    let (table, _) = columns.split_once('.')?;
    Some(table.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_table() {
        assert_eq!(
            table_of_unique_violation("UNIQUE constraint failed: users.email"),
            Some("users")
        );
        assert_eq!(
            table_of_unique_violation(
                "UNIQUE constraint failed: memberships.org_id, memberships.user_id"
            ),
            Some("memberships")
        );
        assert_eq!(table_of_unique_violation("something else"), None);
    }

    #[test]
    fn no_rows_is_not_found() {
        assert_eq!(
            map_error(&rusqlite::Error::QueryReturnedNoRows),
            StoreError::NotFound
        );
    }
}
