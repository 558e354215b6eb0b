//! Property-based API testing: schemathesis (from PyPI) generates requests
//! from `/api/openapi.json` and runs every check it has in every phase
//! (examples, coverage, fuzzing, stateful), on PostgreSQL in per-request
//! mode with a valid token: nothing answers 5xx, every answer conforms to
//! the document (status, content type, headers, body schema), every request
//! the document declares valid is accepted and every one it declares
//! invalid is refused, and so on.
//!
//! The seed changes per run and is printed; `SCHEMATHESIS_SEED=n` replays
//! a run, `SCHEMATHESIS_EXAMPLES=n` changes how many examples per operation
//! (150 by default). `tests/schemathesis_hooks.py` works around one
//! schemathesis bug (a null link value sent as the path segment `None`).
//!
//! `scripts/test-all` installs it into `.tools/schemathesis`; without it
//! this test fails and says how to install it.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Backend, TestApp};
use serde_json::json;

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
    let app = TestApp::start(Backend::PostgresPerRequest).await;
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
    // A new seed every run explores more; printed so a failure can be
    // replayed with SCHEMATHESIS_SEED.
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        (nanos % 1_000_000).to_string()
    });
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "150".into());
    eprintln!(
        "schemathesis seed {seed} ({examples} examples; replay with SCHEMATHESIS_SEED={seed})"
    );
    let seed_for_report = seed.clone();
    let hooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis_hooks.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["run", &schema])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all"])
            .args([
                "--max-examples",
                &examples,
                // One worker: with two, the coverage phase sometimes crashes
                // inside schemathesis 4.32.5 on Python 3.11 (a SystemError
                // "AST constructor recursion depth mismatch", or a KeyError
                // from its own source cache), not in our API.
                "--workers",
                "1",
                "--seed",
                &seed,
            ])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", hooks)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems (seed {seed_for_report}):\n{report}\n{}",
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
