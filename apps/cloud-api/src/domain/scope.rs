//! Scopes: the owners of sources. Every organisation has one org scope,
//! shared by its members, and one user scope per member, private to them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a scope belongs to the whole organisation or to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    /// Shared by the organisation (`user_id` is null).
    Org,
    /// One member's own (`user_id` is that member).
    User,
}

/// A scope that can own sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Scope {
    /// Assigned by the database.
    pub id: i64,
    /// The organisation the scope lives in.
    pub org_id: i64,
    /// `None` for the org scope, else the member owning this user scope.
    pub user_id: Option<i64>,
    /// Derived from `user_id`, so clients need not interpret a null.
    pub kind: ScopeKind,
    /// The organisation's name, for display (both kinds; `kind` tells the
    /// shared scope from the caller's own).
    pub name: String,
}

impl Scope {
    /// Builds a scope, deriving `kind` from `user_id` so the two cannot
    /// disagree.
    pub fn new(id: i64, org_id: i64, user_id: Option<i64>, name: String) -> Scope {
        let kind = match user_id {
            None => ScopeKind::Org,
            Some(_) => ScopeKind::User,
        };
        Scope {
            id,
            org_id,
            user_id,
            kind,
            name,
        }
    }
}
