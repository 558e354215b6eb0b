//! The rules the OpenAPI document states for input are exactly the rules the
//! service enforces: for a corpus of edge cases and of generated strings,
//! a value satisfies the document's `pattern`, `minLength` and `maxLength`
//! if and only if the service's validation accepts it. (schemathesis checks
//! the same from outside, with its own generator.)

use crate::support::{Backend, TestApp};
use cloud_api::domain::Page;
use cloud_api::domain::validate::{validate_email, validate_name, validate_url};
use regex::Regex;
use serde_json::Value;

/// A string rule of the document, compiled.
struct Rule {
    min: usize,
    max: usize,
    pattern: Regex,
}

impl Rule {
    fn of(doc: &Value, schema: &str, field: &str) -> Rule {
        let f = &doc["components"]["schemas"][schema]["properties"][field];
        let pattern = f["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{schema}.{field}: no pattern"));
        Rule {
            min: f["minLength"].as_u64().unwrap() as usize,
            max: f["maxLength"].as_u64().unwrap() as usize,
            pattern: Regex::new(&ecma_to_rust(pattern)).unwrap(),
        }
    }

    /// What the document says: JSON Schema counts lengths in code points.
    fn allows(&self, s: &str) -> bool {
        let n = s.chars().count();
        (self.min..=self.max).contains(&n) && self.pattern.is_match(s)
    }
}

/// The document's patterns use ECMA-262 `\uXXXX`; Rust's regex `\x{XXXX}`.
fn ecma_to_rust(pattern: &str) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(at) = rest.find("\\u") {
        out.push_str(&rest[..at]);
        out.push_str(&format!("\\x{{{}}}", &rest[at + 2..at + 6]));
        rest = &rest[at + 6..];
    }
    out.push_str(rest);
    out
}

/// Characters where the rules have edges.
const EDGES: &[char] = &[
    'a', 'Z', '0', '9', '-', '.', '@', ':', '/', '?', '#', ' ', '\t', '\n', '\0', '\u{7f}',
    '\u{85}', '\u{a0}', '\u{9f}', '\u{1680}', '\u{2000}', '\u{200b}', '\u{2028}', '\u{3000}',
    '\u{feff}', 'é', '😀', '%', '[', ']', '_', '~', '!', '\\',
];

/// A small deterministic generator (xorshift), so failures reproduce.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// A string built from pieces: edge characters and fragments of
    /// plausible values, so that valid and invalid cases both come up.
    fn string(&mut self, fragments: &[&str]) -> String {
        let parts = self.next() % 8;
        let mut s = String::new();
        for _ in 0..parts {
            if self.next().is_multiple_of(2) {
                s.push(self.pick(EDGES));
            } else {
                s.push_str(self.pick(fragments));
            }
        }
        s
    }
}

fn check(rule: &Rule, what: &str, service: impl Fn(&str) -> bool, cases: &[String]) {
    // Both sides must come up, or the comparison proves little.
    let accepted = cases.iter().filter(|c| service(c)).count();
    assert!(
        accepted >= 20 && cases.len() - accepted >= 20,
        "{what}: {accepted} of {} cases valid",
        cases.len()
    );
    let mut disagree = Vec::new();
    for case in cases {
        if rule.allows(case) != service(case) {
            disagree.push(format!(
                "{case:?}: document {}, service {}",
                rule.allows(case),
                service(case)
            ));
        }
    }
    assert!(
        disagree.is_empty(),
        "{what}: {} disagreements:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
}

#[tokio::test]
async fn the_document_states_exactly_the_rules_the_service_enforces() {
    let app = TestApp::start(Backend::Sqlite).await;
    let doc = app
        .get("/api/openapi.json", &[], None)
        .await
        .expect(200)
        .body;
    app.stop().await;

    let mut g = Gen(0x5eed_4242);
    let n = 20_000;

    let name_fragments = ["Ada", " ", "Lovelace", "\u{a0}", "\u{0}", "😀", "é"];
    let mut names: Vec<String> = (0..n).map(|_| g.string(&name_fragments)).collect();
    names.extend([
        "a".repeat(200),
        "a".repeat(201),
        "é".repeat(200),
        format!(" {} ", "a".repeat(198)),
    ]);
    names.extend(["", " ", "\u{3000}", "\u{feff}", "a\u{85}", "\u{200b}"].map(String::from));
    for (schema, field) in [
        ("NewUser", "name"),
        ("NewOrganisation", "name"),
        ("NewSource", "name"),
        ("SourcePatch", "name"),
    ] {
        let rule = Rule::of(&doc, schema, field);
        check(
            &rule,
            &format!("{schema}.{field}"),
            |s| validate_name("name", s).is_ok(),
            &names,
        );
    }

    let email_fragments = ["ada", "@", "example.com", "x", " ", "é"];
    let mut emails: Vec<String> = (0..n).map(|_| g.string(&email_fragments)).collect();
    emails.extend([
        format!("{}@b", "a".repeat(318)),
        format!("{}@b", "a".repeat(319)),
        format!("{}@b", "é".repeat(318)),
    ]);
    emails.extend(["a@b", "@b", "a@", "a@b@c", "a\u{feff}@b", "a@\u{a0}"].map(String::from));
    for (schema, field) in [("NewUser", "email"), ("NewMember", "email")] {
        let rule = Rule::of(&doc, schema, field);
        check(
            &rule,
            &format!("{schema}.{field}"),
            |s| validate_email(s).is_ok(),
            &emails,
        );
    }

    let url_fragments = [
        "http://", "https://", "example", ".com", ":", "8080", "65535", "65536", "/", "?q=1", "#f",
        "1", "255", "256", "01", ".", "xn--", "a-b", "-", "user@", "ftp://",
    ];
    let mut urls: Vec<String> = (0..n).map(|_| g.string(&url_fragments)).collect();
    urls.extend([
        format!("https://e.com/{}", "a".repeat(2048 - 14)),
        format!("https://e.com/{}", "a".repeat(2048 - 13)),
        "http://a".into(),
        "http://1.2.3.4".into(),
        "http://1.2.3".into(),
        "http://e.com:00080".into(),
    ]);
    for (schema, field) in [("NewSource", "url"), ("SourcePatch", "url")] {
        let rule = Rule::of(&doc, schema, field);
        check(
            &rule,
            &format!("{schema}.{field}"),
            |s| validate_url(s).is_ok(),
            &urls,
        );
    }

    // A source config: any object, but no U+0000 in a string or key at any
    // depth (PostgreSQL's jsonb cannot hold it).
    let config = &doc["components"]["schemas"]["Config"];
    let text = Regex::new(&ecma_to_rust(
        config["propertyNames"]["pattern"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(
        doc["components"]["schemas"]["NewSource"]["properties"]["config"]["$ref"],
        "#/components/schemas/Config"
    );
    for (value, ok) in [
        (serde_json::json!({"a": ["b", {"c": 1}]}), true),
        (serde_json::json!({"a\u{0}": 1}), false),
        (serde_json::json!({"a": [{"b": "x\u{0}"}]}), false),
    ] {
        assert_eq!(
            cloud_api::domain::validate::validate_config(&value).is_ok(),
            ok,
            "{value}"
        );
    }
    assert!(text.is_match("any text") && !text.is_match("a\u{0}b"));

    // limit and offset: the document's bounds are the service's.
    let params = doc["paths"]["/api/users"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let bound = |name: &str, key: &str| {
        params.iter().find(|p| p["name"] == name).unwrap()["schema"][key].as_i64()
    };
    assert_eq!(bound("limit", "minimum"), Some(1));
    assert_eq!(bound("limit", "maximum"), Some(Page::MAX_LIMIT));
    assert_eq!(bound("offset", "minimum"), Some(0));
    assert_eq!(bound("offset", "maximum"), None);
    for (limit, offset) in [
        (0, 0),
        (1, 0),
        (500, 0),
        (501, 0),
        (1, -1),
        (1, i64::MIN),
        (1, i64::MAX),
    ] {
        let document = (1..=500).contains(&limit) && offset >= 0;
        assert_eq!(
            Page::new(Some(limit), Some(offset)).is_ok(),
            document,
            "limit {limit} offset {offset}"
        );
    }
}

/// The conformance check every test's answers go through refuses what the
/// document does not allow: a control for `support::openapi_check`.
mod the_conformance_check {
    use crate::support::openapi_check::check;
    use serde_json::json;

    fn user() -> serde_json::Value {
        json!({"id": 1, "name": "Ada", "email": "ada@example.com",
               "created_at": "2024-05-01T12:00:00.000Z"})
    }

    #[test]
    fn accepts_a_documented_answer() {
        check("GET", "/api/users/{id}", 200, &user());
        check("GET", "/api/users/1", 200, &user());
        check(
            "GET",
            "/api/users?limit=1",
            200,
            &json!({"users": [user()], "total": 1}),
        );
        check(
            "GET",
            "/api/orgs",
            200,
            &json!([{"id": 1, "name": "Acme",
            "created_at": "2024-05-01T12:00:00.000Z", "role": "admin"}]),
        );
        check("GET", "/api/nowhere", 404, &json!({"error": "no route"}));
        // The tests' own routes are outside the document by design.
        check("GET", "/__test/panic", 500, &json!({"error": "panicked"}));
    }

    #[test]
    #[should_panic(expected = "Unevaluated properties are not allowed ('extra' was unexpected)")]
    fn refuses_an_undocumented_property() {
        let mut leaky = user();
        leaky["extra"] = json!("secret");
        check("GET", "/api/users/{id}", 200, &leaky);
    }

    #[test]
    #[should_panic(expected = "does not match the document")]
    fn refuses_an_undocumented_property_through_all_of() {
        check(
            "GET",
            "/api/orgs",
            200,
            &json!([{"id": 1, "name": "Acme",
            "created_at": "2024-05-01T12:00:00.000Z", "role": "admin", "owner": 7}]),
        );
    }

    #[test]
    #[should_panic(expected = "does not match the document")]
    fn checks_answers_to_paths_with_a_query_string() {
        check(
            "GET",
            "/api/users?limit=1",
            200,
            &json!({"users": [user()]}),
        );
    }

    #[test]
    #[should_panic(expected = "does not match the document")]
    fn checks_answers_to_filled_in_paths() {
        check("GET", "/api/users/1", 200, &json!({"id": "1"}));
    }

    #[test]
    #[should_panic(expected = "which the OpenAPI document does not list")]
    fn refuses_an_undocumented_status() {
        check("GET", "/api/health", 418, &json!({"error": "teapot"}));
    }

    #[test]
    #[should_panic(expected = "is not in the OpenAPI document")]
    fn refuses_success_on_an_undocumented_path() {
        check("GET", "/api/nowhere", 200, &json!({}));
    }
}
