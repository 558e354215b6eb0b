//! [`PgError`]: what went wrong, with the HTTP status a client should get.
//!
//! The server's message text is never put in the client-facing message: it
//! can quote values from other rows (`Key (email)=(...) already exists`).
//! It stays reachable through [`std::error::Error::source`] for logs.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;
use tokio_postgres::error::SqlState;

/// What kind of failure a [`PgError`] is; decides its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The database cannot be reached, refused the connection, or lost it:
    /// `503 Service Unavailable`.
    Unavailable,
    /// Connecting, waiting for a pooled connection, or a statement took
    /// longer than its bound: `503 Service Unavailable`.
    Timeout,
    /// A constraint refused the change (unique, foreign key, exclusion),
    /// or a serialization failure: `409 Conflict`.
    Conflict,
    /// A value is malformed or out of range for its column: `400 Bad Request`.
    Invalid,
    /// A bug or a state the caller cannot fix: `500 Internal Server Error`.
    Internal,
    /// The connection settings ask for something that cannot work here (a
    /// TLS mode the host cannot honour, say); retrying cannot help, and the
    /// message says what to change: `503 Service Unavailable`.
    Misconfigured,
}

impl ErrorKind {
    /// The status a client gets for this kind of failure.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Misconfigured => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed database operation: a kind (and so an HTTP status), a message
/// fit for a client, and the driver's error as its source.
///
/// Converts into [`provision::Error`] with its status, so a handler can
/// use `?` and answer `{"error": ...}` with the right code:
///
/// ```
/// use provision_postgres::{ErrorKind, PgError};
///
/// let error = PgError::new(ErrorKind::Timeout, "the database took too long");
/// assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
/// let for_the_client: provision::Error = error.into();
/// assert_eq!(for_the_client.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
/// ```
pub struct PgError {
    kind: ErrorKind,
    message: Cow<'static, str>,
    transient: bool,
    source: Option<tokio_postgres::Error>,
}

impl PgError {
    /// An error of `kind` with a message a client may read.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> PgError {
        PgError {
            kind,
            message: message.into(),
            transient: false,
            source: None,
        }
    }

    /// A failed attempt to connect that another attempt may fix (refused,
    /// reset, timed out): [`Postgres::acquire`](crate::Postgres::acquire)
    /// retries these, and nothing else. For a [`Connect`](crate::Connect)
    /// implementation that reports its own failures.
    pub fn transient(message: impl Into<Cow<'static, str>>) -> PgError {
        PgError {
            transient: true,
            ..PgError::new(ErrorKind::Unavailable, message)
        }
    }

    /// Connecting cannot work with these settings (a [`Connect`](crate::Connect)
    /// that finds the URL asks for what its host cannot do): final, never
    /// retried; `message` says which setting to change and may be shown to
    /// a client, so it names settings, never their values.
    ///
    /// ```
    /// use provision_postgres::{ErrorKind, PgError};
    ///
    /// let error = PgError::misconfigured("channel_binding=require is not supported: use prefer");
    /// assert_eq!(error.kind(), ErrorKind::Misconfigured);
    /// assert!(!error.is_transient());
    /// ```
    pub fn misconfigured(message: impl Into<Cow<'static, str>>) -> PgError {
        PgError::new(ErrorKind::Misconfigured, message)
    }

    /// Classifies an error from establishing a connection: whatever went
    /// wrong, the database cannot be reached (a 503). Bad credentials and a
    /// missing database are final; everything else is worth another try.
    pub fn from_connect(error: tokio_postgres::Error) -> PgError {
        let final_code = error.code().is_some_and(|code| {
            *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *code == SqlState::INVALID_CATALOG_NAME
        });
        PgError {
            kind: ErrorKind::Unavailable,
            message: "cannot connect to the database".into(),
            transient: !final_code,
            source: Some(error),
        }
    }

    /// Classifies an error from a statement on an established connection.
    pub fn from_query(error: tokio_postgres::Error) -> PgError {
        let (kind, message): (ErrorKind, &'static str) = if error.is_closed() {
            (ErrorKind::Unavailable, "the database connection was lost")
        } else if let Some(code) = error.code() {
            classify_sqlstate(code)
        } else if has_io_source(&error) {
            (ErrorKind::Unavailable, "cannot reach the database")
        } else {
            (ErrorKind::Internal, "database client error")
        };
        PgError {
            kind,
            message: message.into(),
            transient: false,
            source: Some(error),
        }
    }

    /// The statement ran past its deadline (on the server or in the client).
    pub(crate) fn statement_timeout() -> PgError {
        PgError::new(
            ErrorKind::Timeout,
            "the database took too long to answer; try again shortly",
        )
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status a client should get.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The message for the client (never the server's text).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The SQLSTATE the server answered with, if it answered.
    pub fn code(&self) -> Option<&SqlState> {
        self.source.as_ref().and_then(tokio_postgres::Error::code)
    }

    /// Whether another connect attempt may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// Whether the connection this came from must not be used again: it
    /// was lost, or a statement on it timed out (the server may still be
    /// running it).
    pub(crate) fn breaks_connection(&self) -> bool {
        self.kind == ErrorKind::Unavailable || self.kind == ErrorKind::Timeout
    }
}

/// The status and message for a SQLSTATE; only its class and code are used.
fn classify_sqlstate(code: &SqlState) -> (ErrorKind, &'static str) {
    let code = code.code();
    let class = code.get(..2).unwrap_or(code);
    match (class, code) {
        // query_canceled: statement_timeout (or our own cancel request).
        (_, "57014") => (
            ErrorKind::Timeout,
            "the database took too long to answer; try again shortly",
        ),
        ("23", _) => (ErrorKind::Conflict, "the change conflicts with stored data"),
        (_, "40001" | "40P01" | "55P03") => (
            ErrorKind::Conflict,
            "the change conflicted with another; try again",
        ),
        ("22", _) => (ErrorKind::Invalid, "a value is malformed or out of range"),
        // Connection exceptions, shutdown, too many connections,
        // authentication, no such database.
        ("08" | "57" | "53" | "28", _) | (_, "3D000") => {
            (ErrorKind::Unavailable, "the database is unavailable")
        }
        _ => (ErrorKind::Internal, "database error"),
    }
}

fn has_io_source(error: &tokio_postgres::Error) -> bool {
    let mut source = error.source();
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("code", &self.code().map(SqlState::code))
            .field("transient", &self.transient)
            .finish()
    }
}

impl StdError for PgError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<provision::CrossRequest> for PgError {
    /// A connection used from another request, or after its own ended:
    /// a bug in the app, never the client's fault.
    fn from(error: provision::CrossRequest) -> PgError {
        tracing::error!(%error, "a request-bound connection was used outside its request");
        PgError::new(ErrorKind::Internal, "internal error")
    }
}

/// A handler can return `Result<_, PgError>`: the answer is the error's
/// status and its message, in the application's error format
/// (`{"error": message}` by default).
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for PgError {
    fn into_response(self) -> axum_core::response::Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "database operation failed");
        }
        provision::integration::error_response(self.status(), &self.message)
    }
}

impl From<PgError> for provision::Error {
    /// Keeps the status and the client-safe message; the driver's error
    /// stays reachable as the source, for logs.
    fn from(error: PgError) -> provision::Error {
        if error.status().is_server_error() {
            tracing::warn!(error = %error, "database operation failed");
        }
        let status = error.status();
        let message = error.message.clone();
        provision::Error::with_source(message, error).with_status(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_statuses() {
        let kind = |code: &str| classify_sqlstate(&SqlState::from_code(code)).0;
        assert_eq!(kind("57014"), ErrorKind::Timeout);
        assert_eq!(kind("23505"), ErrorKind::Conflict);
        assert_eq!(kind("23503"), ErrorKind::Conflict);
        assert_eq!(kind("40001"), ErrorKind::Conflict);
        assert_eq!(kind("22P02"), ErrorKind::Invalid);
        for unavailable in ["08006", "57P01", "53300", "28P01", "3D000"] {
            assert_eq!(kind(unavailable), ErrorKind::Unavailable, "{unavailable}");
        }
        assert_eq!(kind("42P01"), ErrorKind::Internal);
    }

    #[test]
    fn statuses() {
        assert_eq!(ErrorKind::Timeout.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            ErrorKind::Unavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(ErrorKind::Conflict.status(), StatusCode::CONFLICT);
        assert_eq!(ErrorKind::Invalid.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ErrorKind::Internal.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
