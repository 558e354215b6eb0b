//! The one error type every store operation returns.

use std::fmt;

use super::reason::Reason;
use crate::domain::ValidationError;
use crate::domain::access::AccessError;

/// Why a store operation failed.
///
/// Every message (`Display`) is safe to show an API client: it never
/// contains SQL, connection strings or the database server's own error text
/// (which can quote other rows' values). `Unavailable` and `Internal` carry
/// a short category and, as their [`source`](std::error::Error::source),
/// the driver's error with the server's reason: for logs and startup
/// failures, never for a response body. A server should still answer those
/// with a generic 503 / 500 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No such row (or not visible in the given scope).
    NotFound,
    /// A uniqueness or invariant rule refused the write, e.g. a duplicate
    /// email or removing the last admin.
    Conflict(String),
    /// The input is malformed; the message names the field.
    Invalid(String),
    /// The database cannot be reached right now: refused or lost
    /// connection, pool timeout, server shutting down, lock contention.
    /// Retrying later may succeed.
    Unavailable(Reason),
    /// A bug or an unexpected database state.
    Internal(Reason),
    /// The database settings ask for something this build cannot do (a
    /// TLS mode, channel binding); retrying cannot help. The message says
    /// what to use instead, naming settings, never their values: a server
    /// answers 503 with it.
    Misconfigured(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Conflict(m) | StoreError::Invalid(m) | StoreError::Misconfigured(m) => {
                f.write_str(m)
            }
            StoreError::Unavailable(reason) | StoreError::Internal(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable(reason) | StoreError::Internal(reason) => reason.source(),
            _ => None,
        }
    }
}

impl StoreError {
    /// The same error with `source` behind it, if it is `Unavailable` or
    /// `Internal` (the kinds whose cause only logs show); other kinds are
    /// returned unchanged, their message being the whole story.
    pub fn caused_by(self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        match self {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(Reason::with_source(reason.to_string(), source))
            }
            StoreError::Internal(reason) => {
                StoreError::Internal(Reason::with_source(reason.to_string(), source))
            }
            other => other,
        }
    }
}

impl From<ValidationError> for StoreError {
    fn from(e: ValidationError) -> Self {
        StoreError::Invalid(e.to_string())
    }
}

/// The conflict reported for a unique violation on `table`. Both databases
/// name the table in their error, and each of our tables has exactly one
/// client-reachable uniqueness rule, so the table is enough.
pub(crate) fn unique_violation(table: Option<&str>) -> StoreError {
    let message = match table {
        Some("users") => "a user with this email already exists",
        Some("memberships") => "the user is already a member of this organisation",
        Some("sources") => "a source with this name already exists in this scope",
        Some("scopes") => "the scope already exists",
        _ => "the record already exists",
    };
    StoreError::Conflict(message.to_owned())
}

/// The store's version of a refused membership change (the only access
/// rule the store applies itself). Deliberately not a `From` impl: a
/// `Forbidden` has no store equivalent, and `?` must not turn one into a 500.
pub(crate) fn membership_change_refused(e: AccessError) -> StoreError {
    match e {
        AccessError::NotFound => StoreError::NotFound,
        AccessError::Conflict(why) => StoreError::Conflict(why.to_owned()),
        AccessError::Forbidden => StoreError::Internal("unexpected access error".into()),
    }
}

/// The error for committing a transaction in which an operation failed.
pub(crate) fn aborted_transaction() -> StoreError {
    StoreError::Internal("transaction rolled back because an operation inside it failed".into())
}
