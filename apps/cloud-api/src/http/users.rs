//! The users endpoints of the contract: list, get, create.

use axum::Json;
use http::StatusCode;
use provision::Lazy;

use super::extract::{self, Path, Query};
use super::{ApiError, ErrorBody, SignedIn};
use crate::domain::page::Pagination;
use crate::domain::{NewUser, Page, User, UserList};
use crate::services::{Conn, Tx};

/// Users by id, a page at a time, with the total count.
#[utoipa::path(get, path = "/api/users", tag = "users", params(Pagination),
    security(("bearer" = [])),
    responses(
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 200, body = UserList),
        (status = 400, description = "A bad limit or offset", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    Query(page): Query<Page>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<UserList>, ApiError> {
    me.get().await?;
    let conn = conn.get().await?;
    Ok(Json(conn.get()?.list_users(page).await?))
}

/// One user.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 200, body = User),
        (status = 400, description = "The id is not an integer", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn get(
    Path(id): Path<i64>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<User>, ApiError> {
    me.get().await?;
    let conn = conn.get().await?;
    let user = conn.get()?.get_user(id).await;
    Ok(Json(user.map_err(|e| ApiError::store(e, "user"))?))
}

/// Creates a user. 409 if the email is taken.
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
    me.get().await?;
    let tx = tx.get().await?;
    let user = tx.get()?.create_user(&new).await?;
    Ok((StatusCode::CREATED, Json(user)))
}
