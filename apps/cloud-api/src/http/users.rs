//! The users endpoints of the contract: list, get, create.
//!
//! Tenant privacy: a caller sees a user's name and email only if the user
//! is the caller, shares an organisation with them, or is an account the
//! caller created (the caller wrote that name and email, and users cannot
//! be renamed, so showing them back discloses nothing). Anyone signed in
//! may create an account, to add to an organisation by email afterwards;
//! from then on its creator and those who share an organisation with it
//! see it, nobody else. A duplicate email is a 409 that names nobody.

use axum::Json;
use http::StatusCode;
use provision::Lazy;

use super::extract::{self, Path, Query};
use super::{ApiError, ErrorBody, SignedIn};
use crate::domain::page::Pagination;
use crate::domain::{NewUser, Page, User, UserList};
use crate::services::{Conn, Tx};

/// The users the caller may see (themself, the accounts they created, and
/// everyone who shares an organisation with them), by id, a page at a
/// time, with how many they may see in all. Another tenant's users are
/// never listed.
///
/// A list route: the list routes share at most `--list-connections`
/// database connections at once (in pool mode, half the pool by default), so that a
/// burst of lists leaves connections for single reads and writes; a list
/// that gets none in time (twice the acquire timeout) is answered 503.
#[utoipa::path(get, path = "/api/users", tag = "users", params(Pagination),
    security(("bearer" = [])),
    responses(
        (status = 503, description = "The database is unavailable, or no connection of the list routes' share (`--list-connections`) came free in time (twice the acquire timeout)", body = ErrorBody),
        (status = 200, body = UserList),
        (status = 400, description = "A bad limit or offset", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    Query(page): Query<Page>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<UserList>, ApiError> {
    let me = me.get().await?;
    let conn = conn.get().await?;
    let users = conn.get()?.list_users_visible_to(me.user.id, page);
    Ok(Json(users.await?))
}

/// One user the caller may see (themself, an account they created, or
/// someone who shares an organisation with them); 404 for anyone else,
/// exactly as for an id no user has.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 200, body = User),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such user, or one the caller may not see", body = ErrorBody),
    ))]
pub async fn get(
    Path(id): Path<i64>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<User>, ApiError> {
    let me = me.get().await?;
    let conn = conn.get().await?;
    let user = conn.get()?.get_user_visible_to(me.user.id, id).await;
    Ok(Json(user.map_err(|e| ApiError::store(e, "user"))?))
}

/// Creates a user account; anyone signed in may. The creator sees it from
/// then on, and so does everyone who comes to share an organisation with
/// it (add it by email with `POST /api/orgs/{org_id}/members`); nobody
/// else. 409 if the email is taken, whoever holds it (the answer names
/// nobody).
///
/// Disconnect policy: `finish` (within 30 s): a client that goes away
/// after sending this does not undo it; the write completes and commits.
/// Safe to finish because a retry cannot duplicate it: the email is
/// unique, so the retry is a 409 and the account exists.
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    security(("bearer" = [])),
    responses(
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 201, body = User),
        (status = 400, description = "A missing or bad field, or malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "The email is taken", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    ))]
pub async fn create(
    me: SignedIn,
    tx: Lazy<Tx>,
    extract::Json(new): extract::Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let me = me.get().await?;
    let tx = tx.get().await?;
    let user = tx.get()?.create_user_by(me.user.id, &new).await?;
    Ok((StatusCode::CREATED, Json(user)))
}
