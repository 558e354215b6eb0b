//! How a request ended, as seen by `settle` and `release`.

use http::StatusCode;

/// How the request that held a service ended.
///
/// Every release step receives one, so a transaction can commit on
/// [`Exit::Success`] and roll back on anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// The handler answered with a 1xx, 2xx or 3xx status.
    Success(StatusCode),
    /// The handler answered with a 4xx or 5xx status (including a rejection,
    /// or a failed `settle`).
    Failure(StatusCode),
    /// The handler (or the response body) panicked.
    Panic,
    /// The client went away before the response was complete.
    Cancelled,
    /// The server shut down while the request was in flight, or the registry
    /// released its app services.
    Shutdown,
}

impl Exit {
    /// The exit for a response with this status.
    ///
    /// ```
    /// use provision::Exit;
    /// use http::StatusCode;
    /// assert_eq!(Exit::from_status(StatusCode::CREATED), Exit::Success(StatusCode::CREATED));
    /// assert!(!Exit::from_status(StatusCode::CONFLICT).is_success());
    /// ```
    pub fn from_status(status: StatusCode) -> Exit {
        if status.is_client_error() || status.is_server_error() {
            Exit::Failure(status)
        } else {
            Exit::Success(status)
        }
    }

    /// True only for [`Exit::Success`]: the one exit on which work should be
    /// kept (committed) rather than undone.
    pub fn is_success(&self) -> bool {
        matches!(self, Exit::Success(_))
    }

    /// The response status, when the request got as far as one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Exit::Success(s) | Exit::Failure(s) => Some(*s),
            _ => None,
        }
    }

    /// A short lowercase label for logs and metrics: `success`, `failure`,
    /// `panic`, `cancelled`, `shutdown`.
    pub fn label(&self) -> &'static str {
        match self {
            Exit::Success(_) => "success",
            Exit::Failure(_) => "failure",
            Exit::Panic => "panic",
            Exit::Cancelled => "cancelled",
            Exit::Shutdown => "shutdown",
        }
    }
}
