//! Users on SQLite.

use rusqlite::{OptionalExtension, Row, params};

use crate::domain::{NewUser, Page, User, UserList};
use crate::store::StoreError;

/// The users `?1` may see: themself, the accounts they created (they wrote
/// those names and emails), and everyone who shares an organisation with
/// them. Keep in step with `store/postgres/users.rs`.
macro_rules! visible_to_1 {
    () => {
        "(id = ?1 OR created_by = ?1 OR id IN (SELECT theirs.user_id FROM memberships mine \
         JOIN memberships theirs ON theirs.org_id = mine.org_id WHERE mine.user_id = ?1))"
    };
}

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

/// A page of the users `viewer` may see (see `visible_to_1!`), by id, and
/// how many they may see in all.
pub(crate) fn list_visible(
    db: &rusqlite::Connection,
    viewer: i64,
    page: Page,
) -> Result<UserList, StoreError> {
    let mut stmt = db.prepare_cached(concat!(
        "SELECT id, name, email, created_at, count(*) OVER () AS total FROM users WHERE ",
        visible_to_1!(),
        " ORDER BY id LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt
        .query_map(params![viewer, page.limit(), page.offset()], |row| {
            Ok((user_from_row(row)?, row.get::<_, i64>("total")?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = match rows.first() {
        Some((_, total)) => *total,
        None if page.offset() == 0 => 0,
        None => db
            .prepare_cached(concat!(
                "SELECT count(*) FROM users WHERE ",
                visible_to_1!()
            ))?
            .query_row([viewer], |row| row.get(0))?,
    };
    Ok(UserList {
        users: rows.into_iter().map(|(user, _)| user).collect(),
        total,
    })
}

/// The user `id` if `viewer` may see them; `NotFound` otherwise, exactly as
/// for an id no user has.
pub(crate) fn get_visible(
    db: &rusqlite::Connection,
    viewer: i64,
    id: i64,
) -> Result<User, StoreError> {
    Ok(db
        .prepare_cached(concat!(
            "SELECT id, name, email, created_at FROM users WHERE id = ?2 AND ",
            visible_to_1!()
        ))?
        .query_row([viewer, id], user_from_row)?)
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

/// Inserts a user created by `creator` through the API (see
/// `visible_to_1!`); `Conflict` if the email is taken.
pub(crate) fn create_by(
    db: &rusqlite::Connection,
    creator: i64,
    new: &NewUser,
) -> Result<User, StoreError> {
    new.validate()?;
    Ok(db
        .prepare_cached(
            "INSERT INTO users (name, email, created_by) VALUES (?1, ?2, ?3) \
             RETURNING id, name, email, created_at",
        )?
        .query_row(params![new.name, new.email, creator], user_from_row)?)
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
