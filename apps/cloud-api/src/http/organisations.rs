//! Organisations and their members. Creating one makes the caller its
//! admin; managing members is for admins; the last admin stays.

use axum::Json;
use http::StatusCode;
use provision::Lazy;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{self, Path};
use super::{ApiError, ErrorBody, SignedIn};
use crate::domain::access::{check_manage_members, check_organisation};
use crate::domain::validate::validate_email;
use crate::domain::{
    Member, MyOrganisation, NewOrganisation, Organisation, Role, Validate, ValidationError,
};
use crate::services::{Conn, Tx};
use crate::store::StoreError;

/// Creates an organisation, with its org scope, and makes the caller its
/// admin (with a user scope).
///
/// Disconnect policy: `cancel`: a client that goes away before the answer
/// rolls this back. Nothing makes a retry of it converge (organisations
/// have no unique key), so finishing it for a client that will retry
/// would create a second organisation.
#[utoipa::path(post, path = "/api/orgs", tag = "organisations", request_body = NewOrganisation,
    security(("bearer" = [])),
    responses((status = 413, description = "The body is too large", body = ErrorBody), (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 201, body = Organisation), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create(
    me: SignedIn,
    tx: Lazy<Tx>,
    extract::Json(new): extract::Json<NewOrganisation>,
) -> Result<(StatusCode, Json<Organisation>), ApiError> {
    let me = me.get().await?;
    let tx = tx.get().await?;
    let org = tx.get()?.create_organisation(me.user.id, &new).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// The organisations the caller belongs to, with their role in each.
///
/// A list route: the list routes share at most `--list-connections`
/// database connections at once (in pool mode, half the pool by default), so that a
/// burst of lists leaves connections for single reads and writes; a list
/// that gets none in time (twice the acquire timeout) is answered 503.
#[utoipa::path(get, path = "/api/orgs", tag = "organisations", security(("bearer" = [])),
    responses((status = 503, description = "The database is unavailable, or no connection of the list routes' share (`--list-connections`) came free in time (twice the acquire timeout)", body = ErrorBody),
        (status = 200, body = Vec<MyOrganisation>), (status = 401, body = ErrorBody)))]
pub async fn list_mine(
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<Vec<MyOrganisation>>, ApiError> {
    let me = me.get().await?;
    let conn = conn.get().await?;
    Ok(Json(conn.get()?.list_my_organisations(me.user.id).await?))
}

/// The members of an organisation (admins only).
///
/// A list route: the list routes share at most `--list-connections`
/// database connections at once (in pool mode, half the pool by default), so that a
/// burst of lists leaves connections for single reads and writes; a list
/// that gets none in time (twice the acquire timeout) is answered 503.
#[utoipa::path(get, path = "/api/orgs/{org_id}/members", tag = "organisations",
    params(("org_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 400, description = "A malformed id or parameter", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or no connection of the list routes' share (`--list-connections`) came free in time (twice the acquire timeout)", body = ErrorBody),
        (status = 200, body = Vec<Member>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn members(
    Path(org_id): Path<i64>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let me = me.get().await?;
    check_manage_members(&me.caller, org_id).map_err(|e| ApiError::access(e, "organisation"))?;
    let conn = conn.get().await?;
    Ok(Json(conn.get()?.list_members(org_id).await?))
}

/// Who to add, and as what.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// The user's email; they must already have an account.
    pub email: String,
    /// Their role (default `member`).
    #[serde(default = "member")]
    pub role: Role,
}

fn member() -> Role {
    Role::Member
}

/// The email must be one an account could have (the rules of
/// `POST /api/users`, which the document states); one that matches no
/// account is a 409, which only the database can tell.
impl Validate for NewMember {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_email(&self.email)
    }
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `admin` or `member`.
    pub role: Role,
}

/// Its one field is checked by its type.
impl Validate for RoleChange {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

/// Adds a member (admins only); they get a user scope.
///
/// Disconnect policy: `finish` (within 30 s): a client that goes away
/// after sending this does not undo it; the write completes and commits.
/// Safe to finish because a retry cannot duplicate it: a member is
/// in an organisation once, so the retry is a 409.
#[utoipa::path(post, path = "/api/orgs/{org_id}/members", tag = "organisations",
    params(("org_id" = i64, Path)), request_body = NewMember, security(("bearer" = [])),
    responses((status = 413, description = "The body is too large", body = ErrorBody), (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 201, body = Member), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, description = "The organisation does not exist or the caller is not in it", body = ErrorBody),
        (status = 409, description = "The user is already a member, or no user has this email", body = ErrorBody)))]
pub async fn add_member(
    Path(org_id): Path<i64>,
    me: SignedIn,
    tx: Lazy<Tx>,
    extract::Json(new): extract::Json<NewMember>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    let me = me.get().await?;
    check_manage_members(&me.caller, org_id).map_err(|e| ApiError::access(e, "organisation"))?;
    let tx = tx.get().await?;
    let connection = tx.get()?;
    // No account with this email is a 409 (the membership cannot be added
    // in the current state), like adding someone who is already a member;
    // not a 404, which would say the organisation in the path is missing.
    let user = match connection.get_user_by_email(&new.email).await {
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no user has this email",
            ));
        }
        other => other?,
    };
    let member = connection.add_member(org_id, user.id, new.role).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// Changes a member's role (admins only; the last admin cannot be demoted).
///
/// Disconnect policy: `finish` (within 30 s): a client that goes away
/// after sending this does not undo it; the write completes and commits.
/// Safe to finish because a retry cannot duplicate it: setting a
/// role twice is setting it once.
#[utoipa::path(patch, path = "/api/orgs/{org_id}/members/{user_id}", tag = "organisations",
    params(("org_id" = i64, Path), ("user_id" = i64, Path)), request_body = RoleChange,
    security(("bearer" = [])),
    responses((status = 413, description = "The body is too large", body = ErrorBody), (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 200, body = Member), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn change_role(
    Path((org_id, user_id)): Path<(i64, i64)>,
    me: SignedIn,
    tx: Lazy<Tx>,
    extract::Json(change): extract::Json<RoleChange>,
) -> Result<Json<Member>, ApiError> {
    let me = me.get().await?;
    check_manage_members(&me.caller, org_id).map_err(|e| ApiError::access(e, "organisation"))?;
    let tx = tx.get().await?;
    let member = tx
        .get()?
        .change_member_role(org_id, user_id, change.role)
        .await;
    Ok(Json(member.map_err(|e| ApiError::store(e, "member"))?))
}

/// Removes a member and their user scope (admins only; not the last admin).
///
/// Disconnect policy: `finish` (within 30 s): a client that goes away
/// after sending this does not undo it; the write completes and commits.
/// Safe to finish because a retry cannot duplicate it: the retry
/// of a removal finds nothing to remove (404).
#[utoipa::path(delete, path = "/api/orgs/{org_id}/members/{user_id}", tag = "organisations",
    params(("org_id" = i64, Path), ("user_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 400, description = "A malformed id or parameter", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    Path((org_id, user_id)): Path<(i64, i64)>,
    me: SignedIn,
    tx: Lazy<Tx>,
) -> Result<StatusCode, ApiError> {
    let me = me.get().await?;
    check_manage_members(&me.caller, org_id).map_err(|e| ApiError::access(e, "organisation"))?;
    let tx = tx.get().await?;
    let removed = tx.get()?.remove_member(org_id, user_id).await;
    removed.map_err(|e| ApiError::store(e, "member"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// One organisation the caller belongs to.
#[utoipa::path(get, path = "/api/orgs/{org_id}", tag = "organisations",
    params(("org_id" = i64, Path)), security(("bearer" = [])),
    responses((status = 400, description = "A malformed id or parameter", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
        (status = 200, body = Organisation), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    Path(org_id): Path<i64>,
    me: SignedIn,
    conn: Lazy<Conn>,
) -> Result<Json<Organisation>, ApiError> {
    let me = me.get().await?;
    check_organisation(&me.caller, org_id).map_err(|e| ApiError::access(e, "organisation"))?;
    let conn = conn.get().await?;
    let org = conn.get()?.get_organisation(org_id).await;
    Ok(Json(org.map_err(|e| ApiError::store(e, "organisation"))?))
}
