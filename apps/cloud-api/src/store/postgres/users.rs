//! Users on PostgreSQL.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::{col, map_error};
use crate::domain::{NewUser, Page, User, UserList};
use crate::store::StoreError;

macro_rules! user_columns {
    () => {
        concat!("id, name, email, ", ts!("created_at"), " AS created_at")
    };
}

/// The users `$1` may see: themself, the accounts they created (they wrote
/// those names and emails), and everyone who shares an organisation with
/// them (the index on `memberships (user_id)` finds the caller's
/// organisations, the primary key `(org_id, user_id)` their members). Keep in step with `store/sqlite/users.rs` and the benchmark's
/// baseline (`bench/baseline/src/users.rs`).
macro_rules! visible_to_1 {
    () => {
        "(id = $1 OR created_by = $1 OR id IN (SELECT theirs.user_id FROM memberships mine \
         JOIN memberships theirs ON theirs.org_id = mine.org_id WHERE mine.user_id = $1))"
    };
}

pub(super) fn user_from_row(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: col(row, "id")?,
        name: col(row, "name")?,
        email: col(row, "email")?,
        created_at: col(row, "created_at")?,
    })
}

pub(crate) async fn list(client: &Client, page: Page) -> Result<UserList, StoreError> {
    // The window count rides along with the page, saving a round trip; only
    // a page past the end needs a separate count.
    let rows = client
        .query_typed(
            concat!(
                "SELECT ",
                user_columns!(),
                ", count(*) OVER () AS total FROM users ORDER BY id LIMIT $1 OFFSET $2"
            ),
            &[(&page.limit(), Type::INT8), (&page.offset(), Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    let total = match rows.first() {
        Some(row) => col(row, "total")?,
        None if page.offset() == 0 => 0,
        None => {
            let row = client
                .query_typed_one("SELECT count(*) AS total FROM users", &[])
                .await
                .map_err(map_error)?;
            col(&row, "total")?
        }
    };
    let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
    Ok(UserList { users, total })
}

/// A page of the users `viewer` may see (see `visible_to_1!`), by id, and
/// how many they may see in all.
pub(crate) async fn list_visible(
    client: &Client,
    viewer: i64,
    page: Page,
) -> Result<UserList, StoreError> {
    let rows = client
        .query_typed(
            concat!(
                "SELECT ",
                user_columns!(),
                ", count(*) OVER () AS total FROM users WHERE ",
                visible_to_1!(),
                " ORDER BY id LIMIT $2 OFFSET $3"
            ),
            &[
                (&viewer, Type::INT8),
                (&page.limit(), Type::INT8),
                (&page.offset(), Type::INT8),
            ],
        )
        .await
        .map_err(map_error)?;
    let total = match rows.first() {
        Some(row) => col(row, "total")?,
        None if page.offset() == 0 => 0,
        None => {
            let row = client
                .query_typed_one(
                    concat!(
                        "SELECT count(*) AS total FROM users WHERE ",
                        visible_to_1!()
                    ),
                    &[(&viewer, Type::INT8)],
                )
                .await
                .map_err(map_error)?;
            col(&row, "total")?
        }
    };
    let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
    Ok(UserList { users, total })
}

/// The user `id` if `viewer` may see them; `NotFound` otherwise, exactly as
/// for an id no user has.
pub(crate) async fn get_visible(client: &Client, viewer: i64, id: i64) -> Result<User, StoreError> {
    let row = client
        .query_typed_opt(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = $2 AND ",
                visible_to_1!()
            ),
            &[(&viewer, Type::INT8), (&id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    user_from_row(&row)
}

pub(crate) async fn get(client: &Client, id: i64) -> Result<User, StoreError> {
    let row = client
        .query_typed_opt(
            concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
            &[(&id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    user_from_row(&row)
}

pub(crate) async fn get_by_email(client: &Client, email: &str) -> Result<User, StoreError> {
    let row = client
        .query_typed_opt(
            concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"),
            &[(&email, Type::TEXT)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    user_from_row(&row)
}

pub(crate) async fn create(client: &Client, new: &NewUser) -> Result<User, StoreError> {
    new.validate()?;
    let row = client
        .query_typed_one(
            concat!(
                "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING ",
                user_columns!()
            ),
            &[(&new.name, Type::TEXT), (&new.email, Type::TEXT)],
        )
        .await
        .map_err(map_error)?;
    user_from_row(&row)
}

/// Inserts a user created by `creator` through the API (see
/// `visible_to_1!`); `Conflict` if the email is taken.
pub(crate) async fn create_by(
    client: &Client,
    creator: i64,
    new: &NewUser,
) -> Result<User, StoreError> {
    new.validate()?;
    let row = client
        .query_typed_one(
            concat!(
                "INSERT INTO users (name, email, created_by) VALUES ($1, $2, $3) RETURNING ",
                user_columns!()
            ),
            &[
                (&new.name, Type::TEXT),
                (&new.email, Type::TEXT),
                (&creator, Type::INT8),
            ],
        )
        .await
        .map_err(map_error)?;
    user_from_row(&row)
}

pub(crate) async fn find_or_create(
    client: &Client,
    new: &NewUser,
) -> Result<(User, bool), StoreError> {
    new.validate()?;
    // ON CONFLICT instead of insert-then-catch keeps an enclosing
    // transaction usable (a unique violation would abort it).
    let inserted = client
        .query_typed_opt(
            concat!(
                "INSERT INTO users (name, email) VALUES ($1, $2) ",
                "ON CONFLICT (email) DO NOTHING RETURNING ",
                user_columns!()
            ),
            &[(&new.name, Type::TEXT), (&new.email, Type::TEXT)],
        )
        .await
        .map_err(map_error)?;
    match inserted {
        Some(row) => Ok((user_from_row(&row)?, true)),
        None => Ok((get_by_email(client, &new.email).await?, false)),
    }
}
