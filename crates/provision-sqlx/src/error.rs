//! Turning sqlx errors into provision errors a client may see.

use http::StatusCode;
use provision::Error;

/// A sqlx error as a provision [`Error`] with the status a client should
/// get: a constraint violation is `409 Conflict`, an exhausted or closed
/// pool `503 Service Unavailable`, anything else carries no status (so it
/// answers `500` with a generic message). The message a client sees never
/// contains SQL or the database's own text; the sqlx error stays as the
/// source, for logs.
///
/// ```
/// use http::StatusCode;
///
/// let err = provision_sqlx::into_error(sqlx::Error::PoolTimedOut);
/// assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
/// ```
pub fn into_error(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) if is_conflict(db.kind()) => {
            Error::with_source("the change conflicts with data already stored", error)
                .with_status(StatusCode::CONFLICT)
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            Error::with_source("the database is unavailable", error)
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
        _ => Error::with_source("database error", error),
    }
}

fn is_conflict(kind: sqlx::error::ErrorKind) -> bool {
    use sqlx::error::ErrorKind::*;
    matches!(
        kind,
        UniqueViolation
            | ForeignKeyViolation
            | NotNullViolation
            | CheckViolation
            | ExclusionViolation
    )
}

/// Leasing or beginning failed: the request cannot be served now.
pub(crate) fn acquire_error(error: sqlx::Error) -> Error {
    tracing::warn!(%error, "could not get a database connection");
    Error::with_source("the database is unavailable", error)
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
}
