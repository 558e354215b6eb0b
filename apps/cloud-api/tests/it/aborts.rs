//! Clients that go away: 5,000 requests at 64 concurrency, a third of them
//! closing the socket at a random point (while sending, right after
//! sending, mid-handler, mid-body). Afterwards every service acquired was
//! released, the database holds no connection (per-request mode) or at most
//! the pool (pool mode), and ordinary requests all succeed.
//!
//! The soak: `CLOUD_API_SOAK=20 cargo test -p cloud-api --test aborts`
//! runs twenty times as many requests.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{self, Backend, TestApp};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use cloud_api::services::Conn;
use cloud_api::settings::DbMode;
use provision::{Dep, LifetimeKind, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 5,000, or that many times `CLOUD_API_SOAK` for the soak.
fn requests() -> usize {
    let soak: usize = std::env::var("CLOUD_API_SOAK")
        .ok()
        .map(|v| v.parse().expect("CLOUD_API_SOAK is a whole number"))
        .unwrap_or(1);
    5_000 * soak.max(1)
}
const CONCURRENCY: usize = 64;

fn test_routes(_: &Registry) -> Router {
    Router::new()
        .route("/test/hold", get(hold))
        .route("/test/stream", get(stream))
}

/// Uses a connection, then takes 30 ms more.
async fn hold(Dep(conn): Dep<Conn>) -> &'static str {
    conn.get().unwrap().ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    "held"
}

/// A body of 20 chunks, 3 ms apart, that keeps the connection until done.
async fn stream(Dep(conn): Dep<Conn>) -> Body {
    let chunks = futures_util::stream::unfold(0u32, move |n| {
        let conn = conn.clone();
        async move {
            if n == 20 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
            conn.get().ok()?;
            Some((
                Ok::<_, std::io::Error>(Bytes::from(format!("chunk {n}\n"))),
                n + 1,
            ))
        }
    });
    Body::from_stream(chunks)
}

/// A tiny deterministic generator, so a failing run can be repeated.
struct Dice(u64);
impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % sides
    }
}

async fn abort(addr: std::net::SocketAddr, token: &str, how: u64, dice: &mut Dice) {
    let Ok(mut socket) = TcpStream::connect(addr).await else {
        return;
    };
    let auth = format!("authorization: Bearer {token}\r\n");
    match how {
        // While sending: half a request.
        0 => {
            let request = format!(
                "POST /api/users HTTP/1.1\r\nhost: t\r\n{auth}content-type: application/json\r\ncontent-length: 60\r\n\r\n{{\"name\": \"half"
            );
            let cut = 10 + dice.roll(request.len() as u64 - 10) as usize;
            let _ = socket.write_all(&request.as_bytes()[..cut]).await;
        }
        // Right after sending.
        1 => {
            let _ = socket
                .write_all(
                    format!("GET /api/users?limit=5 HTTP/1.1\r\nhost: t\r\n{auth}\r\n").as_bytes(),
                )
                .await;
        }
        // Mid-handler.
        2 => {
            let _ = socket
                .write_all(b"GET /test/hold HTTP/1.1\r\nhost: t\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(dice.roll(25))).await;
        }
        // Mid-body.
        _ => {
            let _ = socket
                .write_all(b"GET /test/stream HTTP/1.1\r\nhost: t\r\n\r\n")
                .await;
            let mut buffer = [0u8; 64];
            let _ =
                tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buffer)).await;
        }
    }
    drop(socket);
}

async fn ordinary(app: &TestApp, client: &reqwest::Client, token: &str, i: usize) {
    let url = |p: &str| format!("http://{}{}", app.addr, p);
    let (response, expected) = match i % 4 {
        0 => (client.get(url("/api/health")).send().await, 200),
        1 => (
            client
                .get(url("/api/users?limit=5"))
                .bearer_auth(token)
                .send()
                .await,
            200,
        ),
        2 => (client.get(url("/test/hold")).send().await, 200),
        _ => (
            client
                .post(url("/api/users"))
                .bearer_auth(token)
                .json(&serde_json::json!({"name": "U", "email": format!("u{i}@example.com")}))
                .send()
                .await,
            201,
        ),
    };
    let status = response.expect("the service answers").status().as_u16();
    assert_eq!(status, expected, "request {i}");
}

async fn server_connections(app: &TestApp) -> i64 {
    app.observer()
        .await
        .query_one(
            "select count(*) from pg_stat_activity where application_name = 'cloud-api' and datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn aborts_in(mode: DbMode) {
    let backend = match mode {
        DbMode::Pool => Backend::PostgresPool,
        DbMode::PerRequest => Backend::PostgresPerRequest,
    };
    let (settings, keep) = support::settings(backend);
    let app = Arc::new(TestApp::start_with_routes(settings, keep, |s| s, test_routes).await);
    let (_, token) = app.user("Ada", "ada@example.com").await;

    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut dice = Dice(w as u64 + 1);
                let mut aborted = 0;
                for i in (w..requests()).step_by(CONCURRENCY) {
                    if dice.roll(3) == 0 {
                        let how = dice.roll(4);
                        abort(app.addr, &token, how, &mut dice).await;
                        aborted += 1;
                    } else {
                        ordinary(&app, &client, &token, i).await;
                    }
                }
                aborted
            })
        })
        .collect();
    let mut aborted = 0;
    for worker in workers {
        aborted += worker.await.unwrap();
    }
    assert!(aborted > requests() / 4, "a third aborted: {aborted}");

    let probe = app.registry.probe();
    support::eventually("every request scope closed", || probe.open_scopes() == 0).await;
    for report in probe
        .snapshot()
        .iter()
        .filter(|r| r.lifetime != LifetimeKind::App)
    {
        assert_eq!(report.acquires, report.releases, "{mode:?}: {report:?}");
        assert_eq!(report.escapes, 0, "{mode:?}: {report:?}");
    }
    assert!(
        probe.acquires::<Conn>() > 1000,
        "{mode:?}: the load used connections"
    );
    // The aborts really cancelled requests: connections held by a handler
    // or a body whose client left were released with the cancelled exit,
    // and none of the aborts was counted as a success or a failure.
    let cancelled = support::releases(&app.metrics, "Conn", "cancelled");
    let (success, failure) = (
        support::releases(&app.metrics, "Conn", "success"),
        support::releases(&app.metrics, "Conn", "failure"),
    );
    assert!(
        cancelled > 0,
        "{mode:?}: no Conn released with the cancelled exit"
    );
    assert_eq!(
        cancelled + success + failure,
        probe.releases::<Conn>(),
        "{mode:?}: every release counted once, with one exit"
    );
    let left = server_connections(&app).await;
    eprintln!(
        "{mode:?}: {} requests, {aborted} aborted; Conn acquires {} releases {} \
         ({cancelled} cancelled); {left} connections left on the server",
        requests(),
        probe.acquires::<Conn>(),
        probe.releases::<Conn>()
    );
    match mode {
        DbMode::PerRequest => assert_eq!(left, 0, "per-request mode left connections"),
        DbMode::Pool => assert!(
            left <= i64::from(app.settings.pool_size),
            "{left} connections"
        ),
    }
    let client = reqwest::Client::new();
    for i in 0..200 {
        ordinary(&app, &client, &token, requests() + i).await;
    }
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_aborts_in_per_request_mode_leak_nothing() {
    aborts_in(DbMode::PerRequest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_aborts_in_pool_mode_leak_nothing() {
    aborts_in(DbMode::Pool).await;
}
