//! Organisations on PostgreSQL.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

use super::{col, map_error, role_col};
use crate::domain::{MyOrganisation, NewOrganisation, Organisation};
use crate::store::StoreError;

fn organisation_from_row(row: &Row) -> Result<Organisation, StoreError> {
    Ok(Organisation {
        id: col(row, "id")?,
        name: col(row, "name")?,
        created_at: col(row, "created_at")?,
    })
}

/// One statement, so it is atomic on its own: the organisation, the
/// creator's admin membership, the org scope and the creator's user scope.
/// (Foreign keys are checked at the end of the statement, so the user scope
/// may reference the membership inserted beside it.)
pub(crate) async fn create(
    client: &Client,
    creator: i64,
    new: &NewOrganisation,
) -> Result<Organisation, StoreError> {
    new.validate()?;
    let row = client
        .query_typed_one(
            concat!(
                "WITH o AS (INSERT INTO organisations (name) VALUES ($1) RETURNING id, name, created_at), ",
                "m AS (INSERT INTO memberships (org_id, user_id, role) SELECT id, $2, 'admin' FROM o), ",
                "s AS (INSERT INTO scopes (org_id, user_id) ",
                "SELECT id, NULL::bigint FROM o UNION ALL SELECT id, $2 FROM o) ",
                "SELECT id, name, ",
                ts!("created_at"),
                " AS created_at FROM o"
            ),
            &[(&new.name, Type::TEXT), (&creator, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    organisation_from_row(&row)
}

pub(crate) async fn get(client: &Client, org_id: i64) -> Result<Organisation, StoreError> {
    let row = client
        .query_typed_opt(
            concat!(
                "SELECT id, name, ",
                ts!("created_at"),
                " AS created_at FROM organisations WHERE id = $1"
            ),
            &[(&org_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?
        .ok_or(StoreError::NotFound)?;
    organisation_from_row(&row)
}

pub(crate) async fn list_mine(
    client: &Client,
    user_id: i64,
) -> Result<Vec<MyOrganisation>, StoreError> {
    let rows = client
        .query_typed(
            concat!(
                "SELECT o.id, o.name, ",
                ts!("o.created_at"),
                " AS created_at, m.role FROM memberships m ",
                "JOIN organisations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.id"
            ),
            &[(&user_id, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    rows.iter()
        .map(|row| {
            Ok(MyOrganisation {
                organisation: organisation_from_row(row)?,
                role: role_col(row, "role")?,
            })
        })
        .collect()
}
