//! Checks every answer against the service's OpenAPI document: the status
//! must be documented for that path and method, and the body must match the
//! documented schema. The schemas of an OpenAPI 3.1 document are JSON Schema
//! 2020-12, so a maintained validator (`jsonschema`) checks them; this file
//! only finds the schema and makes it strict.
//!
//! Strict: an object the document describes refuses properties it does not
//! declare (`unevaluatedProperties: false` is added where the document says
//! nothing), so an answer that leaks an undocumented field fails. The parts
//! of an `allOf` stay open and the whole is closed instead, because in JSON
//! Schema one part cannot see the properties the other parts declare.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

/// Where the tests mount routes of their own (`test_routes` natively, the
/// Worker's `test-routes` feature): outside the document by design.
const TEST_ROUTES: [&str; 2] = ["/test/", "/__test/"];

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(cloud_api::http::ApiDoc::openapi()).unwrap())
}

/// Panics, saying where, if the answer does not conform. `route` is a path
/// template of the document or a path that fills one in; a query string is
/// ignored (it is not part of the path).
#[track_caller]
pub fn check(method: &str, route: &str, status: u16, body: &Value) {
    let path = route.split('?').next().unwrap_or(route);
    let doc = document();
    if TEST_ROUTES.iter().any(|prefix| path.starts_with(prefix)) {
        // Routes the tests mount for themselves; not part of the service.
        return;
    }
    if path == "/api/openapi.json" {
        // The document does not describe itself; it is checked by being
        // the document every other answer is checked against.
        return;
    }
    let Some((path, item)) = template_for(doc, path) else {
        // Outside the document there is only the fallback: an unknown path
        // is a 404 with the service's error body.
        assert_eq!(
            status, 404,
            "{method} {route} is not in the OpenAPI document, yet answered {status}: {body}"
        );
        assert_error_body(method, route, body);
        return;
    };
    let Some(operation) = item.get(method.to_ascii_lowercase()) else {
        assert_eq!(
            status, 405,
            "{method} is not documented for {path}, yet {route} answered {status}: {body}"
        );
        assert_error_body(method, route, body);
        return;
    };
    let Some(response) = operation["responses"].get(status.to_string()) else {
        panic!(
            "{method} {route} answered {status}, which the OpenAPI document does not list: {body}"
        )
    };
    if response
        .pointer("/content/application~1json/schema")
        .is_none()
    {
        assert!(
            body.is_null(),
            "{method} {route} {status} documents no body, got {body}"
        );
        return;
    }
    let validator = validator(path, &method.to_ascii_lowercase(), status);
    let problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("at `{}`: {e}", e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "{method} {route} {status}: the body does not match the document:\n  {}\nbody: {body}",
        problems.join("\n  ")
    );
}

/// The document's path template that `path` is (`/api/users/{id}`) or
/// fills in (`/api/users/7`), with its description.
fn template_for<'d>(doc: &'d Value, path: &str) -> Option<(&'d str, &'d Value)> {
    let paths = doc["paths"].as_object()?;
    if let Some((template, item)) = paths.get_key_value(path) {
        return Some((template, item));
    }
    let segments: Vec<&str> = path.split('/').collect();
    paths.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let fills = parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(part, segment)| {
                part == segment || (part.starts_with('{') && !segment.is_empty())
            });
        fills.then_some((template.as_str(), item))
    })
}

#[track_caller]
fn assert_error_body(method: &str, route: &str, body: &Value) {
    assert!(
        body.as_object().is_some_and(|o| o.len() == 1)
            && body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{method} {route}: expected {{\"error\": \"...\"}}, got {body}"
    );
}

/// One compiled validator per documented answer, built on first use.
fn validator(path: &str, method: &str, status: u16) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let key = format!("{method} {path} {status}");
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(key)
        .or_insert_with(|| {
            let pointer = format!(
                "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
                path.replace('~', "~0").replace('/', "~1")
            );
            let mut schema = document().pointer(&pointer).unwrap().clone();
            let mut root = strict_components().clone();
            close(&mut schema, false, &mut BTreeSet::new());
            root["$defs"] = json!({ "answer": schema });
            root["$ref"] = json!("#/$defs/answer");
            Arc::new(
                jsonschema::draft202012::new(&root)
                    .unwrap_or_else(|e| panic!("the document's schema for {path}: {e}")),
            )
        })
        .clone()
}

/// `{"components": ...}` with every object schema closed, plus an open copy
/// (`<Name>.part`) of each component an `allOf` uses as a part.
fn strict_components() -> &'static Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut schemas = document()["components"]["schemas"].clone();
        let mut parts = BTreeSet::new();
        for schema in schemas.as_object_mut().unwrap().values_mut() {
            close(schema, false, &mut parts);
        }
        let mut open = Map::new();
        for name in parts {
            let mut copy = document()["components"]["schemas"][&name].clone();
            close(&mut copy, true, &mut BTreeSet::new());
            open.insert(format!("{name}.part"), copy);
        }
        schemas.as_object_mut().unwrap().extend(open);
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": { "schemas": schemas },
        })
    })
}

const COMPONENT: &str = "#/components/schemas/";

/// Adds `unevaluatedProperties: false` to every object schema in `schema`
/// that does not say what to do with other properties, unless it is an
/// `allOf` part (`part`). Components referenced as parts are pointed at
/// their open copy and collected in `parts`.
fn close(schema: &mut Value, part: bool, parts: &mut BTreeSet<String>) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::Array(all)) = map.get_mut("allOf") {
        for member in all.iter_mut() {
            if let Some(name) = member["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix(COMPONENT))
                .map(str::to_owned)
            {
                member["$ref"] = json!(format!("{COMPONENT}{name}.part"));
                parts.insert(name);
            }
            close(member, true, parts);
        }
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        for property in properties.values_mut() {
            close(property, false, parts);
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(inner) = map.get_mut(key) {
            close(inner, false, parts);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = map.get_mut(key) {
            for option in options {
                close(option, false, parts);
            }
        }
    }
    let describes_an_object = map.contains_key("properties") || map.contains_key("allOf");
    let says_what_else =
        map.contains_key("additionalProperties") || map.contains_key("unevaluatedProperties");
    if describes_an_object && !says_what_else && !part {
        map.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
}
