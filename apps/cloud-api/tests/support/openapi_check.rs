//! Checks an answer against the service's OpenAPI document: the status must
//! be documented for that route and method, and the body must match the
//! documented schema (types, required properties, enums, references).

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::OpenApi;

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(cloud_api::http::ApiDoc::openapi()).unwrap())
}

/// Panics, saying where, if the answer does not conform.
#[track_caller]
pub fn check(method: &str, route: &str, status: u16, body: &Value) {
    let doc = document();
    let Some(operation) = doc["paths"]
        .get(route)
        .and_then(|p| p.get(method.to_ascii_lowercase()))
    else {
        // Routes outside the document (the fallback, /metrics) are not
        // checked here.
        return;
    };
    let response = operation["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {route} answered {status}, which the OpenAPI document does not list: {body}"));
    match response.pointer("/content/application~1json/schema") {
        Some(schema) => {
            if let Err(problem) = conforms(doc, schema, body, "$") {
                panic!(
                    "{method} {route} {status}: the body does not match the document: {problem}\nbody: {body}"
                );
            }
        }
        None => assert!(
            body.is_null(),
            "{method} {route} {status} documents no body, got {body}"
        ),
    }
}

fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    conforms_as(doc, schema, value, at, true)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or(schema),
        None => schema,
    }
}

/// The properties an object schema declares, through `$ref` and `allOf`.
fn declared_properties(doc: &Value, schema: &Value, into: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        into.extend(properties.keys().cloned());
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            declared_properties(doc, part, into);
        }
    }
}

/// `strict`: refuse properties the schema does not declare (off for the
/// parts of an `allOf`, which is checked against the union of its parts).
fn conforms_as(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    strict: bool,
) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = reference.trim_start_matches('#');
        let target = doc
            .pointer(pointer)
            .ok_or_else(|| format!("{at}: unresolved {reference}"))?;
        return conforms_as(doc, target, value, at, strict);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            if options.iter().any(|o| conforms(doc, o, value, at).is_ok()) {
                return Ok(());
            }
            return Err(format!("{at}: matches none of {key}"));
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            conforms_as(doc, part, value, at, false)?;
        }
        if let (true, Value::Object(map)) = (strict, value) {
            let mut declared = Vec::new();
            declared_properties(doc, schema, &mut declared);
            if let Some(extra) = map.keys().find(|k| !declared.contains(k)) {
                return Err(format!("{at}: property `{extra}` is not in the document"));
            }
        }
        return Ok(());
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = allowed
            .iter()
            .any(|t| *t == actual || (*t == "number" && actual == "integer"));
        if !ok {
            return Err(format!("{at}: expected {allowed:?}, got {actual}"));
        }
    }
    if let (Some(required), Value::Object(map)) =
        (schema.get("required").and_then(Value::as_array), value)
    {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                return Err(format!("{at}: missing required property `{name}`"));
            }
        }
    }
    if let (Some(properties), Value::Object(map)) =
        (schema.get("properties").and_then(Value::as_object), value)
    {
        for (name, property) in properties {
            if let Some(v) = map.get(name) {
                conforms(doc, property, v, &format!("{at}.{name}"))?;
            }
        }
        for name in map.keys() {
            if strict
                && !properties.contains_key(name)
                && schema.get("additionalProperties") != Some(&Value::Bool(true))
            {
                return Err(format!("{at}: property `{name}` is not in the document"));
            }
        }
    }
    if let (Some(items), Value::Array(values)) = (schema.get("items"), value) {
        for (i, v) in values.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}
