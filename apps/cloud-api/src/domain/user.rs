//! Users: the people who hold tokens and belong to organisations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::{ValidationError, validate_email, validate_name};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Assigned by the database, never reused.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Unique across all users (compared exactly, case included).
    pub email: String,
    /// RFC 3339, UTC, millisecond precision, e.g. `2024-05-01T12:00:00.000Z`.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// The body of a request that creates a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewUser {
    /// Not blank, at most 200 characters.
    pub name: String,
    /// Must look like an email address; at most 320 characters.
    pub email: String,
}

impl super::validate::Validate for NewUser {
    fn validate(&self) -> Result<(), ValidationError> {
        NewUser::validate(self)
    }
}

impl NewUser {
    /// Checks every field; the first problem found is reported.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)?;
        validate_email(&self.email)
    }
}

/// One page of users, ordered by id, with the total over all pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// At most `limit` users, starting after `offset` of them.
    pub users: Vec<User>,
    /// How many users exist in all.
    pub total: i64,
}
