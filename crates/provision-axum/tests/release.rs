//! Every acquired service is released exactly once, however the request
//! ends, and its release step is told how it ended.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use provision::{Dep, Error, Exit, Provide, Registry, Request};
use provision_axum::ProvisionLayer;
use support::{BootConn, Conn, Event, Journal, Knobs, TestServer, eventually, journal, registry};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

async fn ok(Dep(conn): Dep<Conn>) -> String {
    conn.id.to_string()
}

async fn conflict(Dep(_conn): Dep<Conn>) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::CONFLICT,
        Json(serde_json::json!({"error": "duplicate"})),
    )
}

async fn panics(Dep(_conn): Dep<Conn>) -> String {
    panic!("handler failure for the test");
}

async fn app_with(registry: &Registry, router: Router) -> TestServer {
    TestServer::start(router.layer(ProvisionLayer::new(registry.clone()))).await
}

#[tokio::test]
async fn success_releases_before_the_response_completes() {
    let registry = registry(Knobs::default()).await;
    let server = app_with(&registry, Router::new().route("/ok", get(ok))).await;

    let (status, body) = server.get("/ok").await;

    assert_eq!(status, StatusCode::OK);
    let id: u64 = body.parse().unwrap();
    // No waiting: the body's last frame is only handed over after release.
    assert_eq!(
        journal(&registry).released("Conn"),
        vec![(id, Exit::Success(StatusCode::OK))]
    );
    server.stop().await;
}

#[tokio::test]
async fn error_status_releases_with_a_failure_exit() {
    let registry = registry(Knobs::default()).await;
    let server = app_with(&registry, Router::new().route("/conflict", get(conflict))).await;

    let (status, _) = server.get("/conflict").await;

    assert_eq!(status, StatusCode::CONFLICT);
    let released = journal(&registry).released("Conn");
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].1, Exit::Failure(StatusCode::CONFLICT));
    server.stop().await;
}

#[tokio::test]
async fn handler_panic_answers_json_500_and_releases() {
    let registry = registry(Knobs::default()).await;
    let server = app_with(&registry, Router::new().route("/panic", get(panics))).await;

    let (status, body) = server.get("/panic").await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "internal error: the handler panicked");
    let released = journal(&registry).released("Conn");
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].1, Exit::Panic);
    // The server is still serving.
    assert_eq!(
        server.get("/panic").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(registry.probe().releases::<Conn>(), 2);
    server.stop().await;
}

#[tokio::test]
async fn client_disconnect_mid_handler_releases_as_cancelled() {
    let registry = registry(Knobs::default()).await;
    let never = Arc::new(Notify::new());
    let hold = {
        let never = never.clone();
        move |Dep(_conn): Dep<Conn>| async move {
            never.notified().await;
            "unreachable"
        }
    };
    let server = app_with(&registry, Router::new().route("/hold", get(hold))).await;

    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /hold HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let probe = registry.probe();
    eventually("the handler acquired its connection", || {
        probe.acquires::<Conn>() == 1
    })
    .await;
    assert_eq!(probe.releases::<Conn>(), 0, "held while the handler runs");
    drop(socket);

    let journal = journal(&registry);
    eventually("the abandoned request released", || {
        journal.released("Conn").len() == 1
    })
    .await;
    assert_eq!(journal.released("Conn")[0].1, Exit::Cancelled);
    server.stop().await;
}

/// A streaming body that holds the connection: one chunk, then (once the
/// gate opens) a chunk every 10 ms until `limit` chunks.
fn streaming_router(gate: Arc<Notify>, limit: usize) -> Router {
    let handler = move |Dep(conn): Dep<Conn>| {
        let gate = gate.clone();
        async move {
            let chunks = futures_util::stream::unfold(0usize, move |n| {
                let gate = gate.clone();
                let conn = conn.clone();
                async move {
                    if n >= limit {
                        return None;
                    }
                    if n == 1 {
                        gate.notified().await;
                    } else if n > 1 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let chunk = Bytes::from(format!("chunk {n} of conn {}\n", conn.id));
                    Some((Ok::<_, std::io::Error>(chunk), n + 1))
                }
            });
            Body::from_stream(chunks)
        }
    };
    Router::new().route("/stream", get(handler))
}

async fn open_stream(addr: std::net::SocketAddr) -> http::Response<hyper::body::Incoming> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    client
        .get(format!("http://{addr}/stream").parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn streaming_body_holds_its_services_until_the_last_byte() {
    let registry = registry(Knobs::default()).await;
    let gate = Arc::new(Notify::new());
    let server = app_with(&registry, streaming_router(gate.clone(), 3)).await;

    let mut body = open_stream(server.addr).await.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"chunk 0"));
    let probe = registry.probe();
    assert_eq!(
        probe.held::<Conn>(),
        1,
        "still streaming: the connection is held"
    );
    assert_eq!(probe.releases::<Conn>(), 0);

    gate.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest.iter().filter(|b| **b == b'\n').count(), 2);
    eventually("released after the last byte", || {
        probe.releases::<Conn>() == 1
    })
    .await;
    assert_eq!(
        journal(&registry).released("Conn")[0].1,
        Exit::Success(StatusCode::OK)
    );
    server.stop().await;
}

#[tokio::test]
async fn streaming_body_dropped_halfway_releases_as_cancelled() {
    let registry = registry(Knobs::default()).await;
    let gate = Arc::new(Notify::new());
    let server = app_with(&registry, streaming_router(gate.clone(), 500)).await;

    let response = open_stream(server.addr).await;
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body); // the client goes away mid-stream
    gate.notify_one();

    let journal = journal(&registry);
    eventually("the dropped stream released", || {
        journal.released("Conn").len() == 1
    })
    .await;
    assert_eq!(journal.released("Conn")[0].1, Exit::Cancelled);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_releases_request_services_first_then_app_services() {
    let registry = registry(Knobs::default()).await;
    let server = app_with(&registry, Router::new().route("/ok", get(ok))).await;
    assert_eq!(server.get("/ok").await.0, StatusCode::OK);
    let journal = journal(&registry);

    server.stop().await;
    registry.shutdown().await;

    let events = journal.events();
    let boot_id = match events[0] {
        Event::Built("BootConn", id) => id,
        ref other => panic!("BootConn is built first, at startup, got {other:?}"),
    };
    assert_eq!(
        events.last(),
        Some(&Event::Released("BootConn", boot_id, Exit::Shutdown)),
        "app services are released last, at shutdown: {events:?}"
    );
    let probe = registry.probe();
    assert_eq!(probe.held::<BootConn>(), 0);
    assert_eq!(probe.releases::<Journal>(), 0, "still held by this test");
    assert_eq!(probe.report::<Journal>().escapes, 1);
    assert!(
        registry.app::<BootConn>().is_none(),
        "app values are gone after shutdown"
    );
}

/// A chain Outer -> Middle -> Inner: built inner first, released outer first.
macro_rules! chained {
    ($name:ident, $deps:ty, $label:literal) => {
        struct $name(Dep<Journal>);
        impl Provide for $name {
            type Lifetime = Request;
            type Deps = $deps;
            async fn build(deps: provision::Handles<Self>) -> Result<Self, Error> {
                let journal = chained!(@journal deps);
                journal.push(Event::Built($label, 0));
                Ok($name(journal))
            }
            async fn release(self, exit: Exit) -> Result<(), Error> {
                self.0.push(Event::Released($label, 0, exit));
                Ok(())
            }
        }
    };
    (@journal $deps:ident) => { $deps.0.clone() };
}
chained!(Inner, (Journal,), "Inner");
chained!(Middle, (Journal, Inner), "Middle");
chained!(Outer, (Journal, Middle), "Outer");

#[tokio::test]
async fn release_runs_in_reverse_order_of_acquisition() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Outer>()
        .build()
        .await
        .unwrap();
    let server = app_with(
        &registry,
        Router::new().route("/chain", get(|Dep(_o): Dep<Outer>| async { "ok" })),
    )
    .await;

    assert_eq!(server.get("/chain").await.0, StatusCode::OK);

    let order: Vec<&str> = journal(&registry)
        .events()
        .into_iter()
        .map(|e| match e {
            Event::Built(s, _) => s,
            Event::Released(s, _, _) => s,
        })
        .collect();
    assert_eq!(
        order,
        ["Inner", "Middle", "Outer", "Outer", "Middle", "Inner"]
    );
    server.stop().await;
}

/// Settles (commits) before the client is answered; a failing settle turns
/// the answer into an error and the release sees that failure.
struct Ledger {
    journal: Dep<Journal>,
    fail: bool,
}

impl Provide for Ledger {
    type Lifetime = Request;
    type Deps = (Journal, RequestHead);

    async fn build((journal, head): (Dep<Journal>, Dep<RequestHead>)) -> Result<Self, Error> {
        Ok(Ledger {
            journal,
            fail: head.header("x-fail-commit").is_some(),
        })
    }

    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        self.journal.push(Event::Released("Ledger.settle", 0, exit));
        if self.fail {
            return Err(Error::new("commit failed: the database went away")
                .with_status(StatusCode::SERVICE_UNAVAILABLE));
        }
        Ok(())
    }

    async fn release(self, exit: Exit) -> Result<(), Error> {
        self.journal.push(Event::Released("Ledger", 0, exit));
        Ok(())
    }
}

use provision::RequestHead;

async fn send_with_header(addr: std::net::SocketAddr, fail: bool) -> (StatusCode, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let mut request = http::Request::get(format!("http://{addr}/write"));
    if fail {
        request = request.header("x-fail-commit", "1");
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn settle_runs_before_the_answer_and_a_failed_settle_replaces_it() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Ledger>()
        .build()
        .await
        .unwrap();
    let router = Router::new().route(
        "/write",
        get(|Dep(_l): Dep<Ledger>| async { (StatusCode::CREATED, "created") }),
    );
    let server = app_with(&registry, router).await;

    let (status, body) = send_with_header(server.addr, false).await;
    assert_eq!((status, body.as_str()), (StatusCode::CREATED, "created"));
    let (status, body) = send_with_header(server.addr, true).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "commit failed: the database went away");

    let events = journal(&registry).events();
    let created = Exit::Success(StatusCode::CREATED);
    assert_eq!(
        events,
        vec![
            Event::Released("Ledger.settle", 0, created),
            Event::Released("Ledger", 0, created),
            Event::Released("Ledger.settle", 0, created),
            Event::Released("Ledger", 0, Exit::Failure(StatusCode::SERVICE_UNAVAILABLE)),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn settle_is_skipped_when_the_handler_panics() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Ledger>()
        .build()
        .await
        .unwrap();
    let router = Router::new().route(
        "/write",
        get(|Dep(_l): Dep<Ledger>| async {
            panic!("boom");
            #[allow(unreachable_code)]
            "unreachable"
        }),
    );
    let server = app_with(&registry, router).await;
    let (status, _) = send_with_header(server.addr, false).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        journal(&registry).events(),
        vec![Event::Released("Ledger", 0, Exit::Panic)]
    );
    server.stop().await;
}

/// Written through the transaction (`Ledger`) and settled before it, since
/// it is newer: its settle fails, so the client hears 409.
struct Outbox {
    ledger: Dep<Ledger>,
}

#[provision::provide(Request)]
impl Outbox {
    async fn build(ledger: Dep<Ledger>) -> Result<Self, Error> {
        Ok(Outbox { ledger })
    }

    async fn settle(&self, exit: Exit) -> Result<(), Error> {
        self.ledger
            .journal
            .push(Event::Released("Outbox.settle", 0, exit));
        Err(Error::new("the outbox refused the message").with_status(StatusCode::CONFLICT))
    }
}

#[tokio::test]
async fn a_failed_settle_tells_the_older_services_so_nothing_under_the_error_commits() {
    let registry = Registry::builder()
        .supply(Journal::default())
        .register::<Outbox>()
        .build()
        .await
        .unwrap();
    let router = Router::new().route(
        "/outbox",
        get(|Dep(_o): Dep<Outbox>| async { (StatusCode::CREATED, "created") }),
    );
    let server = app_with(&registry, router).await;

    let (status, body) = server.get("/outbox").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "the outbox refused the message");

    let conflict = Exit::Failure(StatusCode::CONFLICT);
    assert_eq!(
        journal(&registry).events(),
        vec![
            Event::Released("Outbox.settle", 0, Exit::Success(StatusCode::CREATED)),
            // The ledger (the transaction) is told what the client heard.
            Event::Released("Ledger.settle", 0, conflict),
            Event::Released("Ledger", 0, conflict),
        ]
    );
    server.stop().await;
}
