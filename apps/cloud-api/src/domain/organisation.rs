//! Organisations (tenants) and the people in them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::{ValidationError, validate_name};

/// A tenant: owns an org scope and one user scope per member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Organisation {
    /// Assigned by the database.
    pub id: i64,
    /// Display name; not unique.
    pub name: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// The body of a request that creates an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewOrganisation {
    /// Not blank, at most 200 characters.
    pub name: String,
}

impl super::validate::Validate for NewOrganisation {
    fn validate(&self) -> Result<(), ValidationError> {
        NewOrganisation::validate(self)
    }
}

impl NewOrganisation {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)
    }
}

/// An organisation as seen by one of its members: with that member's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MyOrganisation {
    /// The organisation.
    #[serde(flatten)]
    pub organisation: Organisation,
    /// The caller's role in it.
    pub role: Role,
}

/// A user's membership as listed to an organisation's admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// The member's user id.
    pub user_id: i64,
    /// The member's display name.
    pub name: String,
    /// The member's email.
    pub email: String,
    /// What the member may do in the organisation.
    pub role: Role,
}

/// What a member may do in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages members and writes the org scope's sources.
    Admin,
    /// Reads the org scope's sources; owns a private user scope.
    Member,
}

impl Role {
    /// The spelling used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(ValidationError::new(
                "role",
                "must be one of: admin, member",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_spellings_round_trip() {
        for role in [Role::Admin, Role::Member] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!("Admin".parse::<Role>().unwrap_err().field, "role");
    }

    #[test]
    fn my_organisation_is_flat_json() {
        let mine = MyOrganisation {
            organisation: Organisation {
                id: 3,
                name: "Acme".into(),
                created_at: "2024-01-01T00:00:00.000Z".into(),
            },
            role: Role::Admin,
        };
        assert_eq!(
            serde_json::to_value(&mine).unwrap(),
            serde_json::json!({"id": 3, "name": "Acme",
                "created_at": "2024-01-01T00:00:00.000Z", "role": "admin"})
        );
    }
}
