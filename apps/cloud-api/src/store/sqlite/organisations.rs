//! Organisations on SQLite.

use rusqlite::{Row, params};

use super::role_col;
use crate::domain::{MyOrganisation, NewOrganisation, Organisation};
use crate::store::StoreError;

fn organisation_from_row(row: &Row<'_>) -> rusqlite::Result<Organisation> {
    Ok(Organisation {
        id: row.get("id")?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
    })
}

/// Four statements; the caller runs them in one transaction.
pub(crate) fn create(
    db: &rusqlite::Connection,
    creator: i64,
    new: &NewOrganisation,
) -> Result<Organisation, StoreError> {
    new.validate()?;
    let organisation = db
        .prepare_cached(
            "INSERT INTO organisations (name) VALUES (?1) RETURNING id, name, created_at",
        )?
        .query_row([&new.name], organisation_from_row)?;
    db.prepare_cached("INSERT INTO memberships (org_id, user_id, role) VALUES (?1, ?2, 'admin')")?
        .execute([organisation.id, creator])?;
    db.prepare_cached("INSERT INTO scopes (org_id, user_id) VALUES (?1, NULL), (?1, ?2)")?
        .execute(params![organisation.id, creator])?;
    Ok(organisation)
}

pub(crate) fn get(db: &rusqlite::Connection, org_id: i64) -> Result<Organisation, StoreError> {
    Ok(db
        .prepare_cached("SELECT id, name, created_at FROM organisations WHERE id = ?1")?
        .query_row([org_id], organisation_from_row)?)
}

pub(crate) fn list_mine(
    db: &rusqlite::Connection,
    user_id: i64,
) -> Result<Vec<MyOrganisation>, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT o.id, o.name, o.created_at, m.role FROM memberships m \
         JOIN organisations o ON o.id = m.org_id WHERE m.user_id = ?1 ORDER BY o.id",
    )?;
    let rows = stmt.query_map([user_id], |row| {
        Ok(MyOrganisation {
            organisation: organisation_from_row(row)?,
            role: role_col(row, "role")?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
