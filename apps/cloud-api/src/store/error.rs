//! The one error type every store operation returns.

use std::fmt;

use crate::domain::ValidationError;
use crate::domain::access::AccessError;

/// Why a store operation failed.
///
/// Every message is safe to show an API client: it never contains SQL,
/// connection strings or the database server's own error text (which can
/// quote other rows' values). `Unavailable` and `Internal` carry a short
/// category for logs; a server should still answer those with a generic
/// 503 / 500 body.
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
    Unavailable(String),
    /// A bug or an unexpected database state.
    Internal(String),
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
            StoreError::Conflict(m)
            | StoreError::Invalid(m)
            | StoreError::Unavailable(m)
            | StoreError::Internal(m)
            | StoreError::Misconfigured(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

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
    StoreError::Internal("transaction rolled back because an operation inside it failed".to_owned())
}
