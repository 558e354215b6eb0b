//! Property-based API testing: schemathesis (from PyPI) generates requests
//! from `/api/openapi.json` and checks, on PostgreSQL and with a valid
//! token, that nothing answers 5xx and every answer conforms to the
//! document (status, content type, body schema).
//!
//! `scripts/test-all` installs it into `.tools/schemathesis`; without it
//! this test fails and says how to install it.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use support::{Backend, TestApp};

const VERSION: &str = "4.32.5";

fn schemathesis() -> PathBuf {
    if let Some(bin) = std::env::var_os("SCHEMATHESIS_BIN") {
        return bin.into();
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/schemathesis/bin/schemathesis");
    if local.exists() {
        return local;
    }
    panic!(
        "schemathesis is not installed: run scripts/test-all, or \
         `python3 -m venv .tools/schemathesis && .tools/schemathesis/bin/pip install schemathesis=={VERSION}` \
         at the workspace root (or set SCHEMATHESIS_BIN)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_no_5xx_and_conforming_answers() {
    let bin = schemathesis();
    let app = TestApp::start(Backend::PostgresPool).await;
    let (_, token) = app.user("Ada", "ada@example.com").await;
    // Some data, so that generated ids sometimes hit real rows.
    let org = app
        .post("/api/orgs", &[], Some(&token), json!({"name": "Acme"}))
        .await
        .expect(201);
    let scope = app
        .get("/api/scopes", &[], Some(&token))
        .await
        .expect(200)
        .body[0]["id"]
        .clone();
    app.post(
        "/api/scopes/{scope_id}/sources",
        &[&scope],
        Some(&token),
        json!({"name": "s", "kind": "mcp", "url": "https://s.example.com", "config": {}}),
    )
    .await
    .expect(201);
    assert!(org.body["id"].is_i64());

    let schema = format!("http://{}/api/openapi.json", app.addr);
    // Fixed, so a failure can be replayed; SCHEMATHESIS_SEED explores others.
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261121".to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["run", &schema])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "25", "--workers", "2", "--seed", &seed])
            // The coverage phase crashes inside schemathesis 4.32.5 (a
            // Python SystemError in its schema walker), not in our API.
            .args(["--phases", "examples,fuzzing,stateful"])
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("generated") && report.contains("passed"),
        "{report}"
    );
    let summary: Vec<&str> = report.lines().filter(|l| l.contains("generated")).collect();
    eprintln!("schemathesis: {}", summary.join(" "));
    app.stop().await;
}
