//! The one error type of provision: a build, settle or release that failed.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A service could not be built, settled or released, or was used where it
/// must not be.
///
/// Cheap to clone: when two tasks of one request wait for the same build and
/// it fails, both receive the same error.
///
/// An error may carry the HTTP status it should answer with (a missing bearer
/// token is a 401, an unreachable database a 503); integrations use it when
/// they turn the error into a response, and 500 otherwise.
///
/// ```
/// use provision::Error;
/// use http::StatusCode;
///
/// let err = Error::new("database unavailable").with_status(StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
/// assert_eq!(err.to_string(), "database unavailable");
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    message: Cow<'static, str>,
    status: Option<StatusCode>,
    source: Option<BoxError>,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Error {
        Error::from_parts(message.into(), None, None)
    }

    /// An error caused by `source`; its message is the source's.
    pub fn from_source(source: impl Into<BoxError>) -> Error {
        let source = source.into();
        Error::from_parts(source.to_string().into(), None, Some(source))
    }

    /// An error with this message, caused by `source`.
    pub fn with_source(
        message: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Error {
        Error::from_parts(message.into(), None, Some(source.into()))
    }

    /// The same error, answering with `status` when it becomes a response.
    pub fn with_status(self, status: StatusCode) -> Error {
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.status = Some(status);
                inner
            }
            Err(shared) => Inner {
                message: shared.message.clone(),
                status: Some(status),
                source: Some(Box::new(Error { inner: shared })),
            },
        };
        Error {
            inner: Arc::new(inner),
        }
    }

    /// The HTTP status this error asks to answer with, if any.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The message, without the source chain.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    fn from_parts(
        message: Cow<'static, str>,
        status: Option<StatusCode>,
        source: Option<BoxError>,
    ) -> Error {
        Error {
            inner: Arc::new(Inner {
                message,
                status,
                source,
            }),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("message", &self.inner.message);
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}
