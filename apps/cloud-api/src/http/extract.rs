//! axum's body, path and query extractors, with their rejections turned into
//! JSON errors that say what is wrong with the input.
//!
//! Every check of a request's input happens here, while it is extracted:
//! syntax, shape, size, content type and the domain's rules
//! ([`Validate`]). Handlers take the services that do I/O as
//! [`Lazy`](provision::Lazy) and build them in their body, which runs only
//! once all of this has passed, so a request refused for bad input opens no
//! connection, whatever order a handler lists its arguments in.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, MissingJsonContentType};
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::domain::Validate;

/// A JSON request body, checked. A missing or wrong content type is a 415,
/// a body over the limit a 413, malformed JSON, anything but an object, a
/// missing or wrong field or a value its type's [`Validate`] refuses a 400
/// that names the problem.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Validate, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // axum's own `Json` in its steps (content type, body within the
        // limit, then the bytes), so that each refusal keeps its words.
        if !json_content_type(request.headers()) {
            return Err(refused(MissingJsonContentType::default().into()));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| refused(rejection.into()))?;
        // Every body of this API is an object, but serde's derived structs
        // would also take an array of their fields in order (`[]` was an
        // empty patch, `["Acme"]` an organisation). An object is parsed
        // straight into its type; anything else is parsed as a map, only
        // for serde's words on what is wrong ("invalid type: sequence,
        // expected a map").
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let parsed = if object {
            axum::Json::<T>::from_bytes(&bytes)
        } else {
            axum::Json::<serde_json::Map<String, serde_json::Value>>::from_bytes(&bytes)
                .and_then(|_| axum::Json::<T>::from_bytes(&bytes))
        };
        let axum::Json(value) = parsed.map_err(refused)?;
        value.validate()?;
        Ok(Json(value))
    }
}

/// Whether the request says its body is JSON (`application/json`, or any
/// `application/*+json`): axum's own test, which it does not export.
fn json_content_type(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|name| name == "json"))
        })
}

/// axum's refusal of a body as ours, with its words. axum says 422 for
/// JSON of the wrong shape; the contract says 400 for every bad field.
fn refused(rejection: JsonRejection) -> ApiError {
    let status = match rejection.status() {
        http::StatusCode::UNPROCESSABLE_ENTITY => http::StatusCode::BAD_REQUEST,
        other => other,
    };
    ApiError::new(status, rejection.body_text())
}

/// A path parameter, such as an id: 400 if it does not parse.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// A query string: 400 naming the parameter if it does not parse. A type
/// with rules beyond its fields' types checks them while it is
/// deserialized (as [`Page`](crate::domain::Page) does), so that they too
/// are enforced here.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}
