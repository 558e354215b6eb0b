//! Connections per refused request: what a request that is answered 4xx
//! for bad input costs the database.
//!
//! Both servers run in per-request mode (a connection is opened, never
//! leased, so every database touch shows up as a new session). Each kind of
//! bad input is sent `plan.bad_input_requests` times with a valid token;
//! the figure is the sessions PostgreSQL saw open on the benchmark database
//! (`pg_stat_database.sessions`) per request, and for provision also its
//! own `db_connections_opened_total`. The promise (G12) is 0: a request
//! refused for its input builds no service that does I/O.

use std::time::Duration;

use serde::Serialize;

use crate::servers::{Kind, Mode, Server};
use crate::setup::Env;
use crate::{BoxError, Plan, say};

/// One kind of bad input.
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Option<String>,
    expected: u16,
}

fn cases() -> Vec<Case> {
    let json = Some("application/json");
    vec![
        Case {
            name: "GET /api/users?limit=0 (out of range)",
            method: "GET",
            path: "/api/users?limit=0",
            content_type: None,
            body: None,
            expected: 400,
        },
        Case {
            name: "GET /api/users?limit=ten (not a number)",
            method: "GET",
            path: "/api/users?limit=ten",
            content_type: None,
            body: None,
            expected: 400,
        },
        Case {
            name: "GET /api/users/abc (bad id)",
            method: "GET",
            path: "/api/users/abc",
            content_type: None,
            body: None,
            expected: 400,
        },
        Case {
            name: "POST /api/users, malformed JSON",
            method: "POST",
            path: "/api/users",
            content_type: json,
            body: Some("{\"name\": ".into()),
            expected: 400,
        },
        Case {
            name: "POST /api/users, empty name",
            method: "POST",
            path: "/api/users",
            content_type: json,
            body: Some(r#"{"name":"","email":"nobody@example.com"}"#.into()),
            expected: 400,
        },
        Case {
            name: "POST /api/users, not JSON (text/plain)",
            method: "POST",
            path: "/api/users",
            content_type: Some("text/plain"),
            body: Some("name=Ada".into()),
            expected: 415,
        },
        Case {
            name: "POST /api/users, 100 KiB body (limit 64 KiB)",
            method: "POST",
            path: "/api/users",
            content_type: json,
            body: Some(format!(
                r#"{{"name":"{}","email":"big@example.com"}}"#,
                "x".repeat(100 << 10)
            )),
            expected: 413,
        },
    ]
}

/// One (server, case) measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub server: Kind,
    pub case: &'static str,
    pub requests: u32,
    /// Answers with the expected status.
    pub expected_status: u16,
    pub answered_as_expected: u32,
    /// New sessions on the benchmark database during the requests.
    pub sessions_opened: i64,
    /// The server's `db_connections_opened_total` during the requests
    /// (the baseline has none).
    pub metric_connections_opened: Option<u64>,
}

impl Row {
    pub fn per_request(&self) -> f64 {
        self.sessions_opened as f64 / f64::from(self.requests.max(1))
    }
}

/// Every case against both servers, per-request mode.
pub async fn run(
    env: &Env,
    root: &std::path::Path,
    tmp: &std::path::Path,
    plan: &Plan,
    started: std::time::Instant,
) -> Result<Vec<Row>, BoxError> {
    let mut rows = Vec::new();
    let bearer = format!("Bearer {}", env.token);
    for kind in [Kind::Baseline, Kind::Provision] {
        let server = Server::start(root, tmp, kind, Mode::PerRequest, &env.url).await?;
        for case in cases() {
            let sessions_before = env.sessions().await?;
            let metric_before = server.connections_metric().await;
            let mut as_expected = 0;
            for _ in 0..plan.bad_input_requests {
                let mut headers = vec![("Authorization", bearer.as_str())];
                if let Some(content_type) = case.content_type {
                    headers.push(("Content-Type", content_type));
                }
                let response = crate::http::request(
                    server.port,
                    case.method,
                    case.path,
                    &headers,
                    case.body.as_deref(),
                )
                .await;
                if matches!(response, Ok(ref r) if r.status == case.expected) {
                    as_expected += 1;
                }
            }
            // A backend reports its session to the statistics when it
            // exits, shortly after its client closed.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let row = Row {
                server: kind,
                case: case.name,
                requests: plan.bad_input_requests,
                expected_status: case.expected,
                answered_as_expected: as_expected,
                sessions_opened: env.sessions().await? - sessions_before,
                metric_connections_opened: match (metric_before, server.connections_metric().await)
                {
                    (Some(before), Some(after)) => Some(after.saturating_sub(before)),
                    _ => None,
                },
            };
            say(
                started,
                format!(
                    "{:<9} {:<45} {}/{} answered {}, {:.2} connections per request",
                    kind.label(),
                    row.case,
                    row.answered_as_expected,
                    row.requests,
                    row.expected_status,
                    row.per_request()
                ),
            );
            rows.push(row);
        }
        server.stop().await?;
    }
    Ok(rows)
}
