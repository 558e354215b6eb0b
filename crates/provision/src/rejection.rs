//! Error responses (feature `axum`): a service that could not be provided
//! ([`Rejection`]), an [`Error`] returned by a handler, and the format both
//! are written in, which the application chooses on its registry.

use std::sync::Arc;

use axum_core::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::{Error, Registry, ambient};

/// An application's error format, set with
/// [`RegistryBuilder::error_response`](crate::RegistryBuilder::error_response).
pub(crate) type ErrorResponse = Arc<dyn Fn(StatusCode, &str) -> Response + Send + Sync>;

/// An error response in the format of the request being served: the one its
/// application chose with
/// [`RegistryBuilder::error_response`](crate::RegistryBuilder::error_response),
/// found through the registry of the request being polled on this thread
/// (without opening its scope), or [`json_error`] outside any request. For a
/// crate whose errors answer clients (a database integration's
/// `IntoResponse`), so that they look like the application's own.
///
/// ```
/// use http::StatusCode;
///
/// // Outside a request: the default format.
/// let response = provision::integration::error_response(StatusCode::CONFLICT, "taken");
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
pub fn error_response(status: StatusCode, message: &str) -> Response {
    respond_for(ambient::registry().as_ref(), status, message)
}

/// An error response in `registry`'s format, or the default one.
pub(crate) fn respond_for(
    registry: Option<&Registry>,
    status: StatusCode,
    message: &str,
) -> Response {
    match registry.and_then(Registry::error_format) {
        Some(format) => format(status, message),
        None => json_error(status, message),
    }
}

/// A service could not be provided to a handler. Answers with the error's
/// status (500 if it has none) and, by default, a JSON body
/// `{"error": "..."}` (the application chooses with
/// [`RegistryBuilder::error_response`](crate::RegistryBuilder::error_response)).
///
/// An error without a status is an internal failure: its message is logged,
/// and the body only names the service, so that connection strings or SQL
/// never reach a client. An error with a status (a 401 from authentication,
/// a 503 from an unreachable database) was written for clients and is shown.
#[derive(Debug)]
pub struct Rejection {
    service: &'static str,
    error: Error,
}

impl Rejection {
    pub(crate) fn new(service: &'static str, error: Error) -> Rejection {
        Rejection { service, error }
    }

    pub(crate) fn no_scope() -> Rejection {
        Rejection::new(
            "request scope",
            Error::new(
                "no request scope is active: add provision_axum::ProvisionLayer to the router, \
                 and run spawned work with RequestScope::bind",
            ),
        )
    }

    /// The underlying error.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, message) = match self.error.status() {
            Some(status) => (status, self.error.message().to_owned()),
            None => {
                tracing::error!(service = self.service, error = %self.error, "could not provide a service");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error: could not provide `{}`", self.service),
                )
            }
        };
        error_response(status, &message)
    }
}

/// An error answers with its status and its message (by default as
/// `{"error": message}`; see
/// [`RegistryBuilder::error_response`](crate::RegistryBuilder::error_response)), so a handler
/// can return `Result<_, provision::Error>` and use `?` on
/// [`Lazy::get`](crate::Lazy::get). An error without a status is an internal failure: it is
/// logged, and the client gets a 500 that does not repeat it.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self.status() {
            Some(status) => error_response(status, self.message()),
            None => {
                tracing::error!(error = %self, "internal error");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

/// The default error response: `status`, and `{"error": message}` as
/// `application/json`.
///
/// ```
/// use http::StatusCode;
///
/// let response = provision::integration::json_error(StatusCode::NOT_FOUND, "no such user");
/// assert_eq!(response.status(), StatusCode::NOT_FOUND);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
