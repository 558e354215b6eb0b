//! Scopes on SQLite.

use rusqlite::Row;

use crate::domain::Scope;
use crate::store::StoreError;

fn scope_from_row(row: &Row<'_>) -> rusqlite::Result<Scope> {
    Ok(Scope::new(
        row.get("id")?,
        row.get("org_id")?,
        row.get("user_id")?,
        row.get("name")?,
    ))
}

/// The org scope of every organisation the user belongs to and the user's
/// own scope in each, org scope first.
pub(crate) fn of_user(db: &rusqlite::Connection, user_id: i64) -> Result<Vec<Scope>, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT s.id, s.org_id, s.user_id, o.name FROM scopes s \
         JOIN memberships m ON m.org_id = s.org_id AND m.user_id = ?1 \
         JOIN organisations o ON o.id = s.org_id \
         WHERE s.user_id IS NULL OR s.user_id = ?1 \
         ORDER BY s.org_id, s.user_id IS NOT NULL, s.id",
    )?;
    let rows = stmt.query_map([user_id], scope_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn get(db: &rusqlite::Connection, scope_id: i64) -> Result<Scope, StoreError> {
    Ok(db
        .prepare_cached(
            "SELECT s.id, s.org_id, s.user_id, o.name FROM scopes s \
             JOIN organisations o ON o.id = s.org_id WHERE s.id = ?1",
        )?
        .query_row([scope_id], scope_from_row)?)
}
