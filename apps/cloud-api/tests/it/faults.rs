//! Faults inside the service, on a real PostgreSQL: a handler that panics
//! holding a connection and a transaction, a pool with more takers than
//! connections, a query that hangs, and shutdown with requests in flight.
//! Test-only routes are added beside the production ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{self, Backend, TestApp};
use axum::Router;
use axum::routing::{get, post};
use cloud_api::domain::NewUser;
use cloud_api::services::{Conn, Tx};
use cloud_api::settings::{DbMode, Settings};
use provision::{Dep, Registry};
use serde_json::json;

fn test_routes(_: &Registry) -> Router {
    Router::new()
        .route("/test/panic-in-transaction", post(panic_in_transaction))
        .route("/test/hold-connection", get(hold_connection))
        .route("/test/slow-query", get(slow_query))
}

/// Writes a user inside the request's transaction, then panics.
async fn panic_in_transaction(Dep(tx): Dep<Tx>) -> &'static str {
    let new = NewUser {
        name: "Ghost".into(),
        email: "ghost@example.com".into(),
    };
    tx.get().unwrap().create_user(&new).await.unwrap();
    panic!("the handler fails after writing");
}

/// Holds a connection for 1.5 s.
async fn hold_connection(Dep(conn): Dep<Conn>) -> &'static str {
    conn.get().unwrap().ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    "held"
}

/// A query that would run for 30 s, sent straight through the client
/// inside the request's transaction: the server's `SET LOCAL
/// statement_timeout` (sent with `BEGIN`, safe behind a transaction-mode
/// pooler) cuts it. (No startup parameter sets it for the session any more:
/// PgBouncer refuses one.)
async fn slow_query(Dep(tx): Dep<Tx>) -> Result<&'static str, cloud_api::http::ApiError> {
    let client = tx
        .get()?
        .postgres_client()
        .expect("a PostgreSQL connection");
    client
        .simple_query("select pg_sleep(30)")
        .await
        .map_err(|_| {
            cloud_api::http::ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "the query was cancelled",
            )
        })?;
    Ok("finished")
}

async fn app(mode: DbMode, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let backend = match mode {
        DbMode::Pool => Backend::PostgresPool,
        DbMode::PerRequest => Backend::PostgresPerRequest,
    };
    let (mut settings, keep) = support::settings(backend);
    adjust(&mut settings);
    TestApp::start_with_routes(settings, keep, |s| s, test_routes).await
}

async fn raw_status(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .request(method, format!("http://{}{}", app.addr, path))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_panic_holding_a_transaction_answers_500_releases_both_and_rolls_back() {
    for mode in [DbMode::Pool, DbMode::PerRequest] {
        let app = app(mode, |_| {}).await;
        let (_, token) = app.user("Ada", "ada@example.com").await;

        let (status, body) =
            raw_status(&app, reqwest::Method::POST, "/test/panic-in-transaction").await;

        assert_eq!(status, 500, "{mode:?}");
        assert_eq!(
            body,
            json!({"error": "internal error: the handler panicked"})
        );
        let probe = app.registry.probe();
        assert_eq!(
            (probe.acquires::<Tx>(), probe.releases::<Tx>()),
            (1, 1),
            "{mode:?}"
        );
        assert_eq!(
            (probe.acquires::<Conn>(), probe.releases::<Conn>()),
            (1, 1),
            "{mode:?}"
        );
        let users = app.get("/api/users", &[], Some(&token)).await.expect(200);
        assert_eq!(
            users.body["total"], 1,
            "the panicking write was rolled back ({mode:?})"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn pool_exhaustion_waits_at_most_the_acquire_timeout_then_503_without_deadlock() {
    let app = Arc::new(
        app(DbMode::Pool, |s| {
            s.pool_size = 2;
            s.acquire_timeout = Duration::from_millis(400);
        })
        .await,
    );
    let started = Instant::now();
    let takers: Vec<_> = (0..6)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                let (status, body) =
                    raw_status(&app, reqwest::Method::GET, "/test/hold-connection").await;
                (status, body, asked.elapsed())
            })
        })
        .collect();
    let mut held = 0;
    let mut refused = 0;
    for taker in takers {
        let (status, body, waited) = taker.await.unwrap();
        match status {
            200 => held += 1,
            503 => {
                refused += 1;
                assert_eq!(
                    body["error"],
                    "the database is unavailable; try again shortly"
                );
                assert!(
                    waited < Duration::from_millis(1200),
                    "a 503 after {waited:?}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((held, refused), (2, 4), "two connections, six takers");
    assert!(started.elapsed() < Duration::from_secs(5));
    // No deadlock: the pool serves again.
    let (_, token) = app.user("Ada", "ada@example.com").await;
    app.get("/api/users", &[], Some(&token)).await.expect(200);
    let probe = app.registry.probe();
    assert_eq!(probe.held::<Conn>(), 0);
    assert_eq!(probe.acquires::<Conn>(), probe.releases::<Conn>());
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test]
async fn a_hung_query_is_cut_off_by_the_statement_timeout() {
    for mode in [DbMode::Pool, DbMode::PerRequest] {
        let app = app(mode, |s| s.statement_timeout = Duration::from_millis(300)).await;
        let started = Instant::now();

        let (status, body) = raw_status(&app, reqwest::Method::GET, "/test/slow-query").await;

        assert_eq!(status, 503, "{mode:?}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode:?}: took {:?}",
            started.elapsed()
        );
        let probe = app.registry.probe();
        assert_eq!(probe.held::<Conn>(), 0, "{mode:?}");
        // The connection is usable again (pool) or was closed (per request).
        app.get("/api/ready", &[], None).await.expect(200);
        app.stop().await;
    }
}

#[tokio::test]
async fn shutdown_under_load_finishes_in_flight_requests_and_releases_everything() {
    let app = app(DbMode::Pool, |s| s.pool_size = 4).await;
    let registry = app.registry.clone();
    let addr = app.addr;
    let in_flight: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                reqwest::Client::new()
                    .get(format!("http://{addr}/test/hold-connection"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // All eight are in flight once each has opened its request scope (the
    // handler's `Dep<Conn>` opens it before asking the pool): four hold the
    // pool's four connections, four wait for one.
    support::eventually("all eight requests are inside the service", || {
        registry.probe().open_scopes() == 8
    })
    .await;

    app.stop().await; // returns once everything has been released

    // The drain lets every in-flight request finish, the four that were
    // still waiting for a connection included: the pool closes only after
    // the last request scope, and 1.5 s twice is well within the 10 s grace
    // period, so no request is cut off (which would be a 503).
    for request in in_flight {
        match request.await.unwrap() {
            Ok(status) => assert_eq!(status, 200),
            Err(e) => panic!("an in-flight request was dropped: {e}"),
        }
    }
    let probe = registry.probe();
    assert_eq!(probe.open_scopes(), 0);
    assert_eq!(
        probe.acquires::<Conn>(),
        8,
        "every request got a connection"
    );
    for report in probe.snapshot() {
        assert_eq!(report.held, 0, "{report:?}");
        assert_eq!(report.escapes, 0, "{report:?}");
    }
}
