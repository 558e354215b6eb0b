//! The users endpoints of the contract: list, get, create.

use axum::Json;
use http::StatusCode;
use provision::Dep;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{self, Path, Query};
use super::{ApiError, ErrorBody};
use crate::domain::{NewUser, Page, User, UserList};
use crate::services::{Authenticated, Conn, Tx};

/// `?limit=&offset=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// At most this many users (default 50, at most 500).
    pub limit: Option<i64>,
    /// Skip this many users first (default 0).
    pub offset: Option<i64>,
}

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
    Query(page): Query<Pagination>,
    Dep(_caller): Dep<Authenticated>,
    Dep(conn): Dep<Conn>,
) -> Result<Json<UserList>, ApiError> {
    let page = Page::new(page.limit, page.offset)?;
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
    Dep(_caller): Dep<Authenticated>,
    Dep(conn): Dep<Conn>,
) -> Result<Json<User>, ApiError> {
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
    Dep(_caller): Dep<Authenticated>,
    Dep(tx): Dep<Tx>,
    extract::Json(new): extract::Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    new.validate()?;
    let user = tx.get()?.create_user(&new).await?;
    Ok((StatusCode::CREATED, Json(user)))
}
