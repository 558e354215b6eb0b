//! The users endpoints, with cloud-api's SQL (`store/postgres/users.rs`).

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::auth::{Authed, ListAuthed};
use crate::error::{ApiError, db_error};

/// The users `$1` may see: cloud-api's `visible_to_1!` (themself, the
/// accounts they created, everyone who shares an organisation with them).
macro_rules! visible_to_1 {
    () => {
        "(id = $1 OR created_by = $1 OR id IN (SELECT theirs.user_id FROM memberships mine \
         JOIN memberships theirs ON theirs.org_id = mine.org_id WHERE mine.user_id = $1))"
    };
}

/// `to_char(created_at ...)`: the API's RFC 3339 text, rendered by the database.
macro_rules! user_columns {
    () => {
        "id, name, email, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at"
    };
}

/// A stored user.
#[derive(Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub created_at: String,
}

/// One page of users with the total.
#[derive(Debug, Serialize)]
pub struct UserList {
    pub users: Vec<User>,
    pub total: i64,
}

/// The body of `POST /api/users`.
#[derive(Debug, Deserialize)]
pub struct NewUser {
    pub name: String,
    pub email: String,
}

/// `?limit=&offset=`.
#[derive(Debug, Deserialize)]
pub struct Pagination {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

pub fn user_from_row(row: &Row) -> Result<User, ApiError> {
    let col = |name: &str| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot decode column {name}"),
        )
    };
    Ok(User {
        id: row.try_get("id").map_err(|_| col("id"))?,
        name: row.try_get("name").map_err(|_| col("name"))?,
        email: row.try_get("email").map_err(|_| col("email"))?,
        created_at: row.try_get("created_at").map_err(|_| col("created_at"))?,
    })
}

/// `GET /api/users`.
pub async fn list(
    Query(page): Query<Pagination>,
    ListAuthed {
        authed: Authed { conn, user, .. },
        ..
    }: ListAuthed,
) -> Result<Json<UserList>, ApiError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 500"));
    }
    let offset = page.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("offset: must not be negative"));
    }
    let rows = conn
        .query_typed(
            concat!(
                "SELECT ",
                user_columns!(),
                ", count(*) OVER () AS total FROM users WHERE ",
                visible_to_1!(),
                " ORDER BY id LIMIT $2 OFFSET $3"
            ),
            &[
                (&user.id, Type::INT8),
                (&limit, Type::INT8),
                (&offset, Type::INT8),
            ],
        )
        .await
        .map_err(db_error)?;
    let total = match rows.first() {
        Some(row) => row.try_get("total").map_err(|_| ApiError::internal())?,
        None if offset == 0 => 0,
        None => conn
            .query_typed_one(
                concat!(
                    "SELECT count(*) AS total FROM users WHERE ",
                    visible_to_1!()
                ),
                &[(&user.id, Type::INT8)],
            )
            .await
            .map_err(db_error)?
            .try_get("total")
            .map_err(|_| ApiError::internal())?,
    };
    let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
    Ok(Json(UserList { users, total }))
}

/// `GET /api/users/{id}`.
pub async fn get(
    Path(id): Path<i64>,
    Authed { conn, user, .. }: Authed,
) -> Result<Json<User>, ApiError> {
    let row = conn
        .query_typed_opt(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = $2 AND ",
                visible_to_1!()
            ),
            &[(&user.id, Type::INT8), (&id, Type::INT8)],
        )
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "user not found"))?;
    Ok(Json(user_from_row(&row)?))
}

/// `POST /api/users`: 201, or 409 if the email is taken.
pub async fn create(
    Authed { conn, user, .. }: Authed,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    validate_name(&new.name)?;
    validate_email(&new.email)?;
    let user = conn
        .in_transaction(async |client| {
            let row = client
                .query_typed_one(
                    concat!(
                        "INSERT INTO users (name, email, created_by) VALUES ($1, $2, $3) RETURNING ",
                        user_columns!()
                    ),
                    &[
                        (&new.name, Type::TEXT),
                        (&new.email, Type::TEXT),
                        (&user.id, Type::INT8),
                    ],
                )
                .await
                .map_err(db_error)?;
            user_from_row(&row)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("name: must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "name: must be at most 200 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name: must not contain control characters",
        ));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<(), ApiError> {
    if email.is_empty() {
        return Err(ApiError::bad_request("email: must not be empty"));
    }
    if email.chars().count() > 320 {
        return Err(ApiError::bad_request(
            "email: must be at most 320 characters",
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::bad_request("email: must not contain whitespace"));
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(ApiError::bad_request(
            "email: must look like an email address (name@domain)",
        )),
    }
}

/// axum's extractors with their rejections as JSON errors (and 400, not
/// 422, for a body of the wrong shape), as in cloud-api's `http/extract.rs`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => {
                let status = match rejection.status() {
                    StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                    other => other,
                };
                Err(ApiError::new(status, rejection.body_text()))
            }
        }
    }
}

/// A path parameter: 400 if it does not parse.
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

/// A query string: 400 naming the parameter if it does not parse.
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
