//! The input rules the service enforces, written into the OpenAPI document
//! from the same constants the validation uses (`domain::validate`,
//! `domain::page`), so that the document states every rule: a client
//! generated from it never sends a request the service refuses for its
//! shape, and every request the document calls invalid is refused.
//!
//! utoipa's attributes take only literals; a modifier keeps one source of
//! truth instead.

use serde_json::{Value, json};
use utoipa::Modify;
use utoipa::openapi::{OpenApi, RefOr, Schema};

use crate::domain::Page;
use crate::domain::validate::{
    CONFIG_TEXT_PATTERN, EMAIL_PATTERN, MAX_CONFIG_BYTES, MAX_EMAIL_LEN, MAX_NAME_CHARS,
    MAX_URL_LEN, NAME_PATTERN, URL_PATTERN,
};

/// The rule of one string field.
struct Rule {
    min_length: usize,
    max_length: usize,
    pattern: &'static str,
}

const NAME: Rule = Rule {
    min_length: 1,
    max_length: MAX_NAME_CHARS,
    pattern: NAME_PATTERN,
};

const EMAIL: Rule = Rule {
    min_length: 3,
    max_length: MAX_EMAIL_LEN,
    pattern: EMAIL_PATTERN,
};

// `http://a` is the shortest URL the pattern allows; the pattern admits
// only ASCII, so characters and bytes (MAX_URL_LEN) are the same count.
const URL: Rule = Rule {
    min_length: 8,
    max_length: MAX_URL_LEN,
    pattern: URL_PATTERN,
};

/// Every validated string field of every request body: (schema, field, rule).
const FIELDS: [(&str, &str, &Rule); 8] = [
    ("NewUser", "name", &NAME),
    ("NewUser", "email", &EMAIL),
    ("NewMember", "email", &EMAIL),
    ("NewOrganisation", "name", &NAME),
    ("NewSource", "name", &NAME),
    ("NewSource", "url", &URL),
    ("SourcePatch", "name", &NAME),
    ("SourcePatch", "url", &URL),
];

/// Writes the rules into the document.
pub(super) struct InputRules;

impl Modify for InputRules {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (schema, field, rule) in FIELDS {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
                panic!("the document has no object schema {schema}");
            };
            let Some(RefOr::T(Schema::Object(property))) = object.properties.get_mut(field) else {
                panic!("{schema} has no string field {field}");
            };
            property.min_length = Some(rule.min_length);
            property.max_length = Some(rule.max_length);
            property.pattern = Some(rule.pattern.to_owned());
        }
        for item in openapi.paths.paths.values_mut() {
            let parameters = item
                .get
                .iter_mut()
                .flat_map(|op| op.parameters.iter_mut().flatten());
            for parameter in parameters {
                let range = match parameter.name.as_str() {
                    "limit" => (1, Some(Page::MAX_LIMIT)),
                    "offset" => (0, None),
                    _ => continue,
                };
                let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() else {
                    panic!("{} has no inline schema", parameter.name);
                };
                schema.minimum = Some(utoipa::Number::Int(range.0));
                schema.maximum = range.1.map(|max| utoipa::Number::Int(max as isize));
            }
        }
    }
}

/// The document as served: utoipa's, with the source config's schema
/// written as JSON, since it is recursive (any JSON object whose strings
/// and keys, at any depth, have no U+0000, which PostgreSQL's `jsonb`
/// cannot store), which utoipa's types do not express.
pub(super) fn with_config_schema(mut doc: Value) -> Value {
    let text = json!({ "type": "string", "pattern": CONFIG_TEXT_PATTERN });
    let schemas = &mut doc["components"]["schemas"];
    schemas["Config"] = json!({
        "type": "object",
        "description": format!(
            "Any JSON object of at most {MAX_CONFIG_BYTES} bytes as JSON, \
             whose strings and keys contain no U+0000."
        ),
        "propertyNames": text.clone(),
        "additionalProperties": { "$ref": "#/components/schemas/ConfigValue" },
    });
    schemas["ConfigValue"] = json!({
        "anyOf": [
            text,
            { "type": ["number", "boolean", "null"] },
            { "type": "array", "items": { "$ref": "#/components/schemas/ConfigValue" } },
            { "$ref": "#/components/schemas/Config" },
        ],
    });
    schemas["NewSource"]["properties"]["config"] = json!({ "$ref": "#/components/schemas/Config" });
    schemas["SourcePatch"]["properties"]["config"] = json!({
        "anyOf": [{ "$ref": "#/components/schemas/Config" }, { "type": "null" }],
    });
    doc
}
