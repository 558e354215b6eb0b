//! Memberships on PostgreSQL.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::{col, map_error, role_col};
use crate::domain::access::check_membership_change;
use crate::domain::{Caller, Member, Membership, Role};
use crate::store::StoreError;
use crate::store::error::membership_change_refused;

fn member_from_row(row: &Row) -> Result<Member, StoreError> {
    Ok(Member {
        user_id: col(row, "id")?,
        name: col(row, "name")?,
        email: col(row, "email")?,
        role: role_col(row, "role")?,
    })
}

pub(crate) async fn caller(client: &Client, user_id: i64) -> Result<Caller, StoreError> {
    let rows = client
        .query_typed(
            "SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY org_id",
            &[(&user_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    let memberships = rows
        .iter()
        .map(|row| {
            Ok(Membership {
                org_id: col(row, "org_id")?,
                role: role_col(row, "role")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Caller {
        user_id,
        memberships,
    })
}

pub(crate) async fn list(client: &Client, org_id: i64) -> Result<Vec<Member>, StoreError> {
    let rows = client
        .query_typed(
            "SELECT u.id, u.name, u.email, m.role FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.id",
            &[(&org_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    rows.iter().map(member_from_row).collect()
}

/// One statement: the membership and the member's user scope.
pub(crate) async fn add(
    client: &Client,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> Result<Member, StoreError> {
    let row = client
        .query_typed_one(
            "WITH m AS (INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3) \
             RETURNING user_id, role), \
             s AS (INSERT INTO scopes (org_id, user_id) SELECT $1, user_id FROM m) \
             SELECT u.id, u.name, u.email, m.role FROM m JOIN users u ON u.id = m.user_id",
            &[
                (&org_id, Type::INT8),
                (&user_id, Type::INT8),
                (&role.as_str(), Type::TEXT),
            ],
        )
        .await
        .map_err(map_error)?;
    member_from_row(&row)
}

/// Locks the organisation, then reads the target's role and the admin
/// count. The lock and the read must be separate statements: in READ
/// COMMITTED each statement takes a fresh snapshot, so only a read issued
/// after the lock is granted sees what the previous lock holder committed.
/// Callers run this inside a transaction.
async fn lock_and_read(
    client: &Client,
    org_id: i64,
    user_id: i64,
) -> Result<(Role, usize), StoreError> {
    client
        .query_typed_opt(
            "SELECT id FROM organisations WHERE id = $1 FOR NO KEY UPDATE",
            &[(&org_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    let row = client
        .query_typed_opt(
            "SELECT role, (SELECT count(*) FROM memberships \
             WHERE org_id = $1 AND role = 'admin') AS admins \
             FROM memberships WHERE org_id = $1 AND user_id = $2",
            &[(&org_id, Type::INT8), (&user_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    let admins: i64 = col(&row, "admins")?;
    Ok((
        role_col(&row, "role")?,
        usize::try_from(admins).unwrap_or(0),
    ))
}

/// Must run inside a transaction (see [`lock_and_read`]).
pub(crate) async fn remove(client: &Client, org_id: i64, user_id: i64) -> Result<(), StoreError> {
    let (current, admins) = lock_and_read(client, org_id, user_id).await?;
    check_membership_change(current, None, admins).map_err(membership_change_refused)?;
    // The user scope and its sources go by cascade.
    client
        .query_typed(
            "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2",
            &[(&org_id, Type::INT8), (&user_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    Ok(())
}

/// Must run inside a transaction (see [`lock_and_read`]).
pub(crate) async fn change_role(
    client: &Client,
    org_id: i64,
    user_id: i64,
    role: Role,
) -> Result<Member, StoreError> {
    let (current, admins) = lock_and_read(client, org_id, user_id).await?;
    check_membership_change(current, Some(role), admins).map_err(membership_change_refused)?;
    let row = client
        .query_typed_one(
            "UPDATE memberships m SET role = $3 FROM users u \
             WHERE m.org_id = $1 AND m.user_id = $2 AND u.id = m.user_id \
             RETURNING u.id, u.name, u.email, m.role",
            &[
                (&org_id, Type::INT8),
                (&user_id, Type::INT8),
                (&role.as_str(), Type::TEXT),
            ],
        )
        .await
        .map_err(map_error)?;
    member_from_row(&row)
}
