//! Memberships on SQLite.

use rusqlite::{Row, params};

use super::role_col;
use crate::domain::access::check_membership_change;
use crate::domain::{Caller, Member, Membership, Role};
use crate::store::StoreError;
use crate::store::error::membership_change_refused;

fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        user_id: row.get("id")?,
        name: row.get("name")?,
        email: row.get("email")?,
        role: role_col(row, "role")?,
    })
}

fn get(db: &rusqlite::Connection, org_id: i64, user_id: i64) -> Result<Member, StoreError> {
    Ok(db
        .prepare_cached(
            "SELECT u.id, u.name, u.email, m.role FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = ?1 AND m.user_id = ?2",
        )?
        .query_row([org_id, user_id], member_from_row)?)
}

pub(crate) fn caller(db: &rusqlite::Connection, user_id: i64) -> Result<Caller, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT org_id, role FROM memberships WHERE user_id = ?1 ORDER BY org_id",
    )?;
    let memberships = stmt
        .query_map([user_id], |row| {
            Ok(Membership {
                org_id: row.get("org_id")?,
                role: role_col(row, "role")?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Caller {
        user_id,
        memberships,
    })
}

pub(crate) fn list(db: &rusqlite::Connection, org_id: i64) -> Result<Vec<Member>, StoreError> {
    let mut stmt = db.prepare_cached(
        "SELECT u.id, u.name, u.email, m.role FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.org_id = ?1 ORDER BY u.id",
    )?;
    let rows = stmt.query_map([org_id], member_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Two statements; the caller runs them in one transaction.
pub(crate) fn add(
    db: &rusqlite::Connection,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> Result<Member, StoreError> {
    db.prepare_cached("INSERT INTO memberships (org_id, user_id, role) VALUES (?1, ?2, ?3)")?
        .execute(params![org_id, user_id, role.as_str()])?;
    db.prepare_cached("INSERT INTO scopes (org_id, user_id) VALUES (?1, ?2)")?
        .execute([org_id, user_id])?;
    get(db, org_id, user_id)
}

/// The caller holds a write (IMMEDIATE) transaction, so no other writer can
/// change the admin count between this read and the write that follows.
fn read_for_change(
    db: &rusqlite::Connection,
    org_id: i64,
    user_id: i64,
) -> Result<(Role, usize), StoreError> {
    // An organisation that does not exist has no membership either, so one
    // NotFound covers both.
    let (role, admins): (Role, i64) = db
        .prepare_cached(
            "SELECT role, (SELECT count(*) FROM memberships \
             WHERE org_id = ?1 AND role = 'admin') AS admins \
             FROM memberships WHERE org_id = ?1 AND user_id = ?2",
        )?
        .query_row([org_id, user_id], |row| {
            Ok((role_col(row, "role")?, row.get("admins")?))
        })?;
    Ok((role, usize::try_from(admins).unwrap_or(0)))
}

/// Must run inside a write transaction (see [`read_for_change`]).
pub(crate) fn remove(
    db: &rusqlite::Connection,
    org_id: i64,
    user_id: i64,
) -> Result<(), StoreError> {
    let (current, admins) = read_for_change(db, org_id, user_id)?;
    check_membership_change(current, None, admins).map_err(membership_change_refused)?;
    // The user scope and its sources go by cascade.
    db.prepare_cached("DELETE FROM memberships WHERE org_id = ?1 AND user_id = ?2")?
        .execute([org_id, user_id])?;
    Ok(())
}

/// Must run inside a write transaction (see [`read_for_change`]).
pub(crate) fn change_role(
    db: &rusqlite::Connection,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> Result<Member, StoreError> {
    let (current, admins) = read_for_change(db, org_id, user_id)?;
    check_membership_change(current, Some(role), admins).map_err(membership_change_refused)?;
    db.prepare_cached("UPDATE memberships SET role = ?3 WHERE org_id = ?1 AND user_id = ?2")?
        .execute(params![org_id, user_id, role.as_str()])?;
    get(db, org_id, user_id)
}
