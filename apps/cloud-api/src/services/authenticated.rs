//! [`Authenticated`]: who is calling, from the bearer token.

use http::StatusCode;
use provision::{Dep, Error, Provide, Request};

use crate::domain::{Caller, User};

use super::{Authorization, Conn, store_error};

/// The bearer token of this request, checked for shape only. Separate from
/// [`Authenticated`] so that a request without a usable token is refused
/// before any database connection is opened for it.
pub struct BearerToken(String);

impl BearerToken {
    /// The token as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Provide for BearerToken {
    type Lifetime = Request;
    type Deps = (Authorization,);

    async fn build((header,): (Dep<Authorization>,)) -> Result<Self, Error> {
        bearer_token(&header).map(|t| BearerToken(t.to_owned()))
    }
}

/// The caller behind this request's `Authorization: Bearer <token>`, with
/// their memberships, resolved once per request from the database.
///
/// Asking for it is what makes a route protected: a missing or bad token
/// fails the build with a 401, and the handler never runs.
pub struct Authenticated {
    /// The user the token belongs to.
    pub user: User,
    /// Their memberships, for access decisions.
    pub caller: Caller,
}

impl Provide for Authenticated {
    type Lifetime = Request;
    // The token first: dependencies resolve in order, so a request without
    // one is refused before a connection is opened.
    type Deps = (BearerToken, Conn);

    async fn build((token, conn): (Dep<BearerToken>, Dep<Conn>)) -> Result<Self, Error> {
        let connection = conn.get()?;
        let user = connection
            .resolve_token(token.as_str())
            .await
            .map_err(store_error)?
            .ok_or_else(|| unauthorized("the bearer token is invalid or has been revoked"))?;
        let caller = connection.caller(user.id).await.map_err(store_error)?;
        Ok(Authenticated { user, caller })
    }
}

fn bearer_token(header: &Authorization) -> Result<&str, Error> {
    let value = header.0.as_ref().ok_or_else(|| {
        unauthorized("missing bearer token: send `Authorization: Bearer <token>`")
    })?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

fn unauthorized(message: &'static str) -> Error {
    Error::new(message).with_status(StatusCode::UNAUTHORIZED)
}
