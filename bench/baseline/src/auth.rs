//! The hand-written authentication extractor: the bearer token's shape is
//! checked first (no connection for a request without one), then the
//! request's connection is opened (or leased), the token resolved and the
//! caller's memberships loaded with cloud-api's SQL
//! (`store/postgres/tokens.rs` `resolve`, `members.rs` `caller`). The
//! handler gets the same connection.

use axum::extract::FromRequestParts;
use http::request::Parts;
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;
use tokio_postgres::types::Type;

use crate::db::Conn;
use crate::error::{ApiError, db_error};
use crate::users::{User, user_from_row};
use crate::{AppState, ListCap};

/// One of the caller's memberships.
#[allow(dead_code)] // Loaded as cloud-api does; these endpoints do not read it.
pub struct Membership {
    pub org_id: i64,
    pub role: String,
}

/// The authenticated caller and the request's connection.
#[allow(dead_code)] // Loaded as cloud-api does; these endpoints do not read it.
pub struct Authed {
    pub user: User,
    pub memberships: Vec<Membership>,
    pub conn: Conn,
}

/// [`Authed`] for a list route: in pool mode the connection is taken under
/// the list routes' cap, as cloud-api's `lists` budget group does (half the
/// pool; the slot, the connection and authentication within twice the
/// acquire timeout, else a 503). The slot goes back with the connection.
#[allow(dead_code)] // Held, never read.
pub struct ListAuthed {
    pub authed: Authed,
    slot: Option<OwnedSemaphorePermit>,
}

const INVALID: &str = "the bearer token is invalid or has been revoked";

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state, None)
            .await
            .map(|(authed, _)| authed)
    }
}

impl FromRequestParts<AppState> for ListAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(lists) = &state.lists else {
            let authed = authenticate(parts, state, None).await?.0;
            return Ok(ListAuthed { authed, slot: None });
        };
        let within = tokio::time::timeout(lists.wait, authenticate(parts, state, Some(lists)));
        let (authed, slot) = within.await.map_err(|_| {
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "no connection of the list routes' share came free in time; try again shortly",
            )
        })??;
        Ok(ListAuthed { authed, slot })
    }
}

/// The token's shape, a slot of `lists` if given, the connection, then the
/// token and the caller's memberships from the database.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    lists: Option<&ListCap>,
) -> Result<(Authed, Option<OwnedSemaphorePermit>), ApiError> {
    let token = bearer_token(parts)?;
    let slot = match lists {
        Some(lists) => Some(
            lists
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ApiError::unavailable())?,
        ),
        None => None,
    };
    let conn = state.db.connect(&state.metrics).await?;
    let Some((id, secret)) = parse_token(token) else {
        return Err(ApiError::unauthorized(INVALID));
    };
    let row = conn
        .query_typed_opt(
            "SELECT t.hash, u.id, u.name, u.email, \
                 to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
                 AS created_at FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
            &[(&id, Type::INT8)],
        )
        .await
        .map_err(db_error)?
        .ok_or(ApiError::unauthorized(INVALID))?;
    let stored: &str = row.try_get("hash").map_err(|_| ApiError::internal())?;
    if !constant_time_eq(
        hex(&Sha256::digest(secret.as_bytes())).as_bytes(),
        stored.as_bytes(),
    ) {
        return Err(ApiError::unauthorized(INVALID));
    }
    let user = user_from_row(&row)?;
    let rows = conn
        .query_typed(
            "SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY org_id",
            &[(&user.id, Type::INT8)],
        )
        .await
        .map_err(db_error)?;
    let memberships = rows
        .iter()
        .map(|row| {
            Ok(Membership {
                org_id: row.try_get("org_id").map_err(|_| ApiError::internal())?,
                role: row.try_get("role").map_err(|_| ApiError::internal())?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    let authed = Authed {
        user,
        memberships,
        conn,
    };
    Ok((authed, slot))
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>`",
        ))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::unauthorized(
        "the Authorization header must be `Bearer <token>`",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

/// `pv_<id>_<64 lowercase hex>`, as cloud-api issues them.
fn parse_token(token: &str) -> Option<(i64, &str)> {
    let rest = token.strip_prefix("pv_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
    let well_formed = secret.len() == 64
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some((id, secret))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}
