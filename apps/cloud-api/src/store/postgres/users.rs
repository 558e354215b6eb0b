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
