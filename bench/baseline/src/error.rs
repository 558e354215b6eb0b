//! `{"error": "..."}` with the right status, as in cloud-api.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: &'static str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; try again shortly",
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

/// cloud-api's mapping of the database errors these endpoints can meet.
pub fn db_error(e: tokio_postgres::Error) -> ApiError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code == "23505" {
            let message = match db.table() {
                Some("users") => "a user with this email already exists",
                _ => "the record already exists",
            };
            return ApiError::new(StatusCode::CONFLICT, message);
        }
        if code.starts_with("22") || code == "23502" || code == "23514" {
            return ApiError::bad_request("a value is malformed or out of range");
        }
        if matches!(&code[..2], "08" | "57" | "53" | "28") || code == "3D000" {
            return ApiError::unavailable();
        }
    }
    if e.is_closed() || db_io_error(&e) {
        return ApiError::unavailable();
    }
    tracing::warn!(error = %e, "database operation failed");
    ApiError::internal()
}

fn db_io_error(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
