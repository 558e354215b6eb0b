//! [`ApiError`]: every error a client sees, as `{"error": "..."}` with the
//! right status.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{AccessError, ValidationError};
use crate::services::store_error;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person to read.
    pub error: String,
}

/// An error answer: a status and a message safe to show the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 404 naming what was not found.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    /// 400 with this message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// An access decision, naming the thing for a 404.
    pub fn access(error: AccessError, what: &str) -> ApiError {
        match error {
            AccessError::NotFound => ApiError::not_found(what),
            AccessError::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                format!("only an admin of the organisation may do this to the {what}"),
            ),
            AccessError::Conflict(why) => ApiError::new(StatusCode::CONFLICT, why),
        }
    }

    /// A store error, naming the thing for a 404.
    pub fn store(error: StoreError, what: &str) -> ApiError {
        match error {
            StoreError::NotFound => ApiError::not_found(what),
            other => ApiError::from(other),
        }
    }
}

impl From<provision::Error> for ApiError {
    fn from(error: provision::Error) -> ApiError {
        match error.status() {
            Some(status) => ApiError::new(status, error.message()),
            None => {
                tracing::error!(%error, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::from(store_error(error))
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> ApiError {
        ApiError::bad_request(error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.message)
    }
}

/// An error response: `status` and an [`ErrorBody`] as JSON. The format of
/// provision's own errors too (set on the registry in `app.rs`).
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let body = ErrorBody {
        error: message.to_owned(),
    };
    (status, axum::Json(body)).into_response()
}
