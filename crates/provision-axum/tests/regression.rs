//! The regression cases of the source pull request, ported: a request
//! service is built per request and never shared, an app service once.
//! Every case runs over real HTTP on loopback against an axum router that
//! is built once, at boot, the way the production router is.

mod support;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use provision::{Dep, Exit};
use provision_axum::ProvisionLayer;
use support::{BootConn, Conn, Knobs, TestServer, eventually, journal, registry};

async fn request_conn(Dep(conn): Dep<Conn>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "id": conn.id }))
}

async fn boot_conn(Dep(conn): Dep<BootConn>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "id": conn.id }))
}

fn ids(bodies: &[String]) -> Vec<u64> {
    bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn case_1_app_lifetime_is_built_once_and_shared() {
    let registry = registry(Knobs::default()).await;
    let app = Router::new()
        .route("/boot", get(boot_conn))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;

    let (s1, b1) = server.get("/boot").await;
    let (s2, b2) = server.get("/boot").await;

    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        ids(&[b1, b2]),
        vec![1, 1],
        "an app service is shared by design"
    );
    assert_eq!(registry.probe().acquires::<BootConn>(), 1);
    assert_eq!(registry.probe().acquires::<Conn>(), 0);
    server.stop().await;
}

#[tokio::test]
async fn case_2_request_lifetime_rebuilds_per_request_although_the_router_is_built_at_boot() {
    let registry = registry(Knobs::default()).await;
    // Built once, before any request: the shape that captured request 1's
    // socket in the source system.
    let app = Router::new()
        .route("/conn", get(request_conn))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;

    let (_, b1) = server.get("/conn").await;
    let (_, b2) = server.get("/conn").await;

    // BootConn took id 1 at boot.
    assert_eq!(ids(&[b1, b2]), vec![2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn case_3_sequential_requests_each_acquire_and_release_their_own() {
    let registry = registry(Knobs::default()).await;
    let app = Router::new()
        .route("/conn", get(request_conn))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;

    let (_, b1) = server.get("/conn").await;
    let (_, b2) = server.get("/conn").await;
    let first_two = ids(&[b1, b2]);
    assert_ne!(first_two[0], first_two[1]);

    let probe = registry.probe();
    eventually("both requests released", || probe.releases::<Conn>() == 2).await;
    assert_eq!(probe.acquires::<Conn>(), 2);
    assert_eq!(probe.held::<Conn>(), 0);
    let released: Vec<u64> = journal(&registry)
        .released("Conn")
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        released, first_two,
        "each request released the value it built"
    );
    server.stop().await;
}

#[tokio::test]
async fn case_5_concurrent_requests_never_share_one_build() {
    let registry = registry(Knobs {
        build_delay: Duration::from_millis(5),
    })
    .await;
    let app = Router::new()
        .route("/conn", get(request_conn))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;

    let (a, b) = tokio::join!(server.get("/conn"), server.get("/conn"));

    let got: HashSet<u64> = ids(&[a.1, b.1]).into_iter().collect();
    assert_eq!(
        got,
        HashSet::from([2, 3]),
        "two overlapping requests, two builds"
    );
    let probe = registry.probe();
    eventually("both released", || probe.releases::<Conn>() == 2).await;
    assert_eq!(probe.acquires::<Conn>(), 2);
    server.stop().await;
}

/// A middleware (`from_fn`), two extractors and the handler's state all in
/// one request: one build, shared by all.
#[tokio::test]
async fn one_build_per_request_shared_by_middleware_and_extractors() {
    async fn remember(
        Dep(conn): Dep<Conn>,
        request: axum::extract::Request,
        next: Next,
    ) -> Response {
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert("x-middleware-conn", conn.id.to_string().parse().unwrap());
        response
    }
    async fn handler(
        State(label): State<&'static str>,
        Dep(a): Dep<Conn>,
        Dep(b): Dep<Conn>,
    ) -> String {
        assert!(std::sync::Arc::ptr_eq(&a, &b), "two extractors, one value");
        format!("{label} {} {}", a.id, b.id)
    }

    let registry = registry(Knobs::default()).await;
    let nested = Router::new()
        .route("/twice", get(handler))
        .with_state("nested");
    let app = Router::new()
        .nest("/api", nested)
        .layer(middleware::from_fn(remember))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;

    let response = reqwest_like_get(server.addr, "/api/twice").await;
    assert_eq!(response.0, StatusCode::OK);
    let (label, a, b) = {
        let parts: Vec<&str> = response.2.split(' ').collect();
        (
            parts[0].to_owned(),
            parts[1].to_owned(),
            parts[2].to_owned(),
        )
    };
    assert_eq!(label, "nested");
    assert_eq!(a, b);
    assert_eq!(
        response.1.as_deref(),
        Some(a.as_str()),
        "the middleware saw the same value"
    );
    let probe = registry.probe();
    assert_eq!(probe.acquires::<Conn>(), 1);
    eventually("released", || probe.releases::<Conn>() == 1).await;
    server.stop().await;
}

/// GET returning status, the `x-middleware-conn` header and the body.
async fn reqwest_like_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> (StatusCode, Option<String>, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = response.status();
    let header = response
        .headers()
        .get("x-middleware-conn")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, header, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn stress_1000_requests_at_64_concurrency_release_everything_and_share_nothing() {
    let registry = registry(Knobs::default()).await;
    let app = Router::new()
        .route("/conn", get(request_conn))
        .route("/health", get(|| async { "ok" }))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));

    let addr = server.addr;
    let workers: Vec<_> = (0..64)
        .map(|w| {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut i = w;
                while i < 1000 {
                    let path = if i % 4 == 0 { "/health" } else { "/conn" };
                    let (status, body) = support::get(addr, path).await;
                    assert_eq!(status, StatusCode::OK);
                    if path == "/conn" {
                        seen.lock().unwrap().push(ids(&[body])[0]);
                    }
                    i += 64;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 750);
    let distinct: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), 750, "no value was seen by two requests");
    let probe = registry.probe();
    eventually("every request released", || probe.releases::<Conn>() == 750).await;
    assert_eq!(
        probe.acquires::<Conn>(),
        750,
        "health requests built nothing"
    );
    assert_eq!(probe.held::<Conn>(), 0);
    assert_eq!(probe.report::<Conn>().escapes, 0);
    assert!(
        journal(&registry)
            .released("Conn")
            .iter()
            .all(|(_, exit)| *exit == Exit::Success(StatusCode::OK))
    );
    server.stop().await;
    assert_eq!(probe.open_scopes(), 0);
}
