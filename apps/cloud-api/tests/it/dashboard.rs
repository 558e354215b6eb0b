//! The Grafana dashboard in `ops/grafana/provision.json` cannot rot: it
//! parses, every panel queries Prometheus, and every metric its PromQL
//! names is one the service exposes (the real service on loopback, its
//! `/metrics` scraped after some traffic).

use std::collections::BTreeSet;

use crate::support::{Backend, TestApp};
use serde_json::Value;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ops/grafana/provision.json"
    );
    let text = std::fs::read_to_string(path).expect("the dashboard is in the repository");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every PromQL expression of the dashboard.
fn expressions(dashboard: &Value) -> Vec<String> {
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty(), "the dashboard has panels");
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("every panel has an id")),
            "{title}: panel ids are unique"
        );
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} queries something");
        for target in targets {
            let expr = target["expr"].as_str().expect("every target has an expr");
            exprs.push(expr.to_owned());
        }
    }
    exprs
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions or aggregations (followed by `(`), keywords, label names in
/// `by (...)`, `on (...)` and the like, inside `{...}` matchers or `[...]` ranges.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Keywords followed by a list of label names, then the others.
    const LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &["bool", "and", "or", "unless", "offset"];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false; // the next `( ... )` lists labels
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i = past(&chars, i + 1, close);
            }
            '(' if skip_list => {
                i = past(&chars, i, ')');
                skip_list = false;
            }
            '$' => {
                // A Grafana variable (`$__rate_interval`).
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next] == ' ' {
                    next += 1;
                }
                let rest: String = chars[next..].iter().collect();
                let modified = rest.starts_with("by ")
                    || rest.starts_with("by(")
                    || rest.starts_with("without");
                if LISTS.contains(&word.as_str()) {
                    skip_list = true;
                } else if KEYWORDS.contains(&word.as_str())
                    || chars.get(next) == Some(&'(')
                    || modified
                {
                    // a keyword, or a function or aggregation (`sum by (..) (..)`)
                } else {
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The position after the first `close` at or after `i`.
fn past(chars: &[char], i: usize, close: char) -> usize {
    chars[i.min(chars.len())..]
        .iter()
        .position(|c| *c == close)
        .map_or(chars.len(), |at| i + at + 1)
}

/// The sample names a scrape can carry: every sample line's name, and what
/// each `# TYPE` line declares (prometheus-client 0.23 declares a family
/// with no series yet; 0.26 leaves it out).
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "gauge" | "unknown" => &[""],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            names.insert(name.to_owned());
        }
    }
    names
}

#[test]
fn the_name_reader_finds_metrics_and_only_metrics() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le, service) (rate(a_seconds_bucket{x=\"y z\"}[$__rate_interval]))) / on (service) group_left b_total",
    );
    let expected: BTreeSet<String> = ["a_seconds_bucket", "b_total"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exposed_by_the_service() {
    let dashboard = dashboard();
    let wanted: BTreeSet<String> = expressions(&dashboard)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    assert!(wanted.len() >= 10, "the names were read: {wanted:?}");

    let app = TestApp::start(Backend::Sqlite).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    app.get("/api/health", &[], None).await.expect(200);
    app.users_traffic(&token).await;
    let scrape = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let have = exposed(&scrape);
    // The client stayed: nothing counted, the series there at zero.
    assert!(
        scrape.contains(
            r#"provision_finish_total{method="POST",route="/api/users",outcome="completed"} 0"#
        ),
        "{scrape}"
    );
    app.stop().await;

    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the service does not expose: {missing:?}\n{scrape}"
    );
}
