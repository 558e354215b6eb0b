//! Sources: registered integrations (an API description, an MCP server, a
//! GraphQL endpoint) owned by a scope.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::validate::{ValidationError, validate_config, validate_name, validate_url};

/// What kind of integration a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// An OpenAPI document.
    Openapi,
    /// A Model Context Protocol server.
    Mcp,
    /// A GraphQL endpoint.
    Graphql,
}

impl SourceKind {
    /// The spelling used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Openapi => "openapi",
            SourceKind::Mcp => "mcp",
            SourceKind::Graphql => "graphql",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openapi" => Ok(SourceKind::Openapi),
            "mcp" => Ok(SourceKind::Mcp),
            "graphql" => Ok(SourceKind::Graphql),
            _ => Err(ValidationError::new(
                "kind",
                "must be one of: openapi, mcp, graphql",
            )),
        }
    }
}

/// A stored source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Source {
    /// Assigned by the database.
    pub id: i64,
    /// The owning scope.
    pub scope_id: i64,
    /// Unique within the scope.
    pub name: String,
    /// What kind of integration this is.
    pub kind: SourceKind,
    /// Where it lives (http or https).
    pub url: String,
    /// Kind-specific settings; always a JSON object.
    #[schema(value_type = Object)]
    pub config: Value,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC; changes on every successful non-empty patch.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The body of a request that creates a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewSource {
    /// Not blank, at most 200 characters, unique within the scope.
    pub name: String,
    /// What kind of integration this is.
    pub kind: SourceKind,
    /// An absolute http or https URL.
    pub url: String,
    /// A JSON object; `{}` when omitted.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: Value,
}

impl super::validate::Validate for NewSource {
    fn validate(&self) -> Result<(), ValidationError> {
        NewSource::validate(self)
    }
}

impl NewSource {
    /// Checks every field; the first problem found is reported.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("name", &self.name)?;
        validate_url(&self.url)?;
        validate_config(&self.config)
    }
}

/// The body of a request that changes a source: absent fields stay as they
/// are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourcePatch {
    /// New name, unique within the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SourceKind>,
    /// New URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New config, replacing the old one whole (not merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

impl super::validate::Validate for SourcePatch {
    fn validate(&self) -> Result<(), ValidationError> {
        SourcePatch::validate(self)
    }
}

impl SourcePatch {
    /// Checks the fields that are present.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        if let Some(url) = &self.url {
            validate_url(url)?;
        }
        if let Some(config) = &self.config {
            validate_config(config)?;
        }
        Ok(())
    }

    /// True when the patch changes nothing (the store then leaves
    /// `updated_at` alone).
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.kind.is_none() && self.url.is_none() && self.config.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_round_trip_and_reject_others() {
        for kind in [SourceKind::Openapi, SourceKind::Mcp, SourceKind::Graphql] {
            assert_eq!(kind.as_str().parse::<SourceKind>().unwrap(), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        let err = "soap".parse::<SourceKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "kind: must be one of: openapi, mcp, graphql"
        );
        assert!(
            serde_json::from_value::<NewSource>(
                json!({"name": "a", "kind": "soap", "url": "http://x"})
            )
            .is_err()
        );
    }

    #[test]
    fn new_source_defaults_config_and_validates_each_field() {
        let new: NewSource = serde_json::from_value(
            json!({"name": "pets", "kind": "openapi", "url": "https://p.dev"}),
        )
        .unwrap();
        assert_eq!(new.config, json!({}));
        assert!(new.validate().is_ok());

        let field = |v: Value| {
            serde_json::from_value::<NewSource>(v)
                .unwrap()
                .validate()
                .unwrap_err()
                .field
        };
        assert_eq!(
            field(json!({"name": "", "kind": "mcp", "url": "https://p.dev"})),
            "name"
        );
        assert_eq!(
            field(json!({"name": "a", "kind": "mcp", "url": "p.dev"})),
            "url"
        );
        assert_eq!(
            field(json!({"name": "a", "kind": "mcp", "url": "https://p.dev", "config": [1]})),
            "config"
        );
    }

    #[test]
    fn patch_validates_only_present_fields() {
        assert!(SourcePatch::default().is_empty());
        assert!(SourcePatch::default().validate().is_ok());
        let patch: SourcePatch = serde_json::from_value(json!({"url": "gopher://x"})).unwrap();
        assert!(!patch.is_empty());
        assert_eq!(patch.validate().unwrap_err().field, "url");
        let patch: SourcePatch = serde_json::from_value(json!({"config": "x"})).unwrap();
        assert_eq!(patch.validate().unwrap_err().field, "config");
        let patch: SourcePatch = serde_json::from_value(json!({"name": " "})).unwrap();
        assert_eq!(patch.validate().unwrap_err().field, "name");
    }
}
