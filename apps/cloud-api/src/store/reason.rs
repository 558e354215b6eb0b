//! [`Reason`]: what an `Unavailable` or `Internal` store error says, and
//! the driver's error behind it.

use std::fmt;
use std::sync::Arc;

/// The short category of an `Unavailable` or `Internal` error, and the error
/// it came from, if any: the driver's, which says what the database server
/// itself reported (a refused password, a missing privilege).
///
/// Compares by message only: two errors of the same category are the same
/// outcome whatever their driver said. Derefs to the message.
///
/// ```
/// use std::error::Error;
/// use cloud_api::store::{Reason, StoreError};
///
/// let io = std::io::Error::other("connection refused");
/// let error = StoreError::Unavailable(Reason::with_source("cannot reach the database", io));
/// assert_eq!(error.to_string(), "cannot reach the database");
/// assert_eq!(error.source().unwrap().to_string(), "connection refused");
/// assert_eq!(error, StoreError::Unavailable("cannot reach the database".into()));
/// ```
#[derive(Clone)]
pub struct Reason {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Reason {
    /// A message with no error behind it.
    pub fn new(message: impl Into<String>) -> Reason {
        Reason {
            message: message.into(),
            source: None,
        }
    }

    /// A message and the error it summarises.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Reason {
        Reason {
            message: message.into(),
            source: Some(Arc::from(source.into())),
        }
    }

    /// The error behind the message, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl std::ops::Deref for Reason {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{:?} (from {source})", self.message),
            None => fmt::Debug::fmt(&self.message, f),
        }
    }
}

impl PartialEq for Reason {
    fn eq(&self, other: &Reason) -> bool {
        self.message == other.message
    }
}

impl Eq for Reason {}

impl From<String> for Reason {
    fn from(message: String) -> Reason {
        Reason::new(message)
    }
}

impl From<&str> for Reason {
    fn from(message: &str) -> Reason {
        Reason::new(message)
    }
}
