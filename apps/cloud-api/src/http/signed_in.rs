//! [`SignedIn`]: the caller of a protected route, looked up when first used.

use axum::extract::FromRequestParts;
use http::request::Parts;
use provision::integration::ScopeControl;
use provision::{Dep, Lazy, Rejection, RequestScope};

use super::ApiError;
use crate::services::{Authenticated, Authorization, BearerToken};

/// The caller of a protected route.
///
/// Extracting it checks the `Authorization` header's shape only
/// ([`BearerToken`], no I/O), so a request without a usable token is a 401
/// before its body is read. The token is looked up in the database
/// ([`Authenticated`]) when the handler calls [`get`](SignedIn::get), after
/// every other argument has been extracted and checked: a request refused
/// for bad input never costs a connection.
///
/// Asking for it is what protects a route, but only once `get` is called:
/// call it first in the handler. A `SignedIn` argument that is never used
/// is an unused variable, which `clippy -D warnings` refuses.
pub struct SignedIn(Lazy<Authenticated>);

impl SignedIn {
    /// The caller: their user and memberships. A 401 if the token is
    /// unknown or revoked, a 503 if the database cannot be reached.
    pub async fn get(&self) -> Result<Dep<Authenticated>, ApiError> {
        Ok(self.0.get().await?)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let scope = RequestScope::from_request_parts(parts, state).await?;
        // The one header the token is read from, handed over while the
        // request's headers are at hand: the value shares the request's
        // bytes, where a `RequestHead` would copy the whole head.
        if !scope.contains::<Authorization>() {
            let header = parts.headers.get(http::header::AUTHORIZATION).cloned();
            scope.seed(Authorization(header));
        }
        Dep::<BearerToken>::from_request_parts(parts, state).await?;
        Ok(SignedIn(
            Lazy::<Authenticated>::from_request_parts(parts, state).await?,
        ))
    }
}
