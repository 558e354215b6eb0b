//! Users on SQLite.

use rusqlite::{OptionalExtension, Row, params};

use crate::domain::{NewUser, Page, User, UserList};
use crate::store::StoreError;

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        created_at: row.get("created_at")?,
    })
}

pub(crate) fn list(db: &rusqlite::Connection, page: Page) -> Result<UserList, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT id, name, email, created_at, count(*) OVER () AS total \
         FROM users ORDER BY id LIMIT ?1 OFFSET ?2",
    )?;
    let rows = stmt
        .query_map(params![page.limit(), page.offset()], |row| {
            Ok((user_from_row(row)?, row.get::<_, i64>("total")?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = match rows.first() {
        Some((_, total)) => *total,
        None if page.offset() == 0 => 0,
        None => db
            .prepare_cached("SELECT count(*) FROM users")?
            .query_row([], |row| row.get(0))?,
    };
    Ok(UserList {
        users: rows.into_iter().map(|(user, _)| user).collect(),
        total,
    })
}

pub(crate) fn get(db: &rusqlite::Connection, id: i64) -> Result<User, StoreError> {
    Ok(db
        .prepare_cached("SELECT id, name, email, created_at FROM users WHERE id = ?1")?
        .query_row([id], user_from_row)?)
}

pub(crate) fn get_by_email(db: &rusqlite::Connection, email: &str) -> Result<User, StoreError> {
    Ok(db
        .prepare_cached("SELECT id, name, email, created_at FROM users WHERE email = ?1")?
        .query_row([email], user_from_row)?)
}

pub(crate) fn create(db: &rusqlite::Connection, new: &NewUser) -> Result<User, StoreError> {
    new.validate()?;
    Ok(db
        .prepare_cached(
            "INSERT INTO users (name, email) VALUES (?1, ?2) \
             RETURNING id, name, email, created_at",
        )?
        .query_row([&new.name, &new.email], user_from_row)?)
}

pub(crate) fn find_or_create(
    db: &rusqlite::Connection,
    new: &NewUser,
) -> Result<(User, bool), StoreError> {
    new.validate()?;
    let inserted = db
        .prepare_cached(
            "INSERT INTO users (name, email) VALUES (?1, ?2) \
             ON CONFLICT (email) DO NOTHING RETURNING id, name, email, created_at",
        )?
        .query_row([&new.name, &new.email], user_from_row)
        .optional()?;
    match inserted {
        Some(user) => Ok((user, true)),
        None => Ok((get_by_email(db, &new.email)?, false)),
    }
}
