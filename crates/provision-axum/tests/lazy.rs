//! Over real HTTP: a `Lazy<T>` extracted before an extractor that refuses
//! the request builds nothing (while an eager `Dep<T>` in the same place
//! builds and releases one), and a `Lazy<T>` used by the handler is built
//! once and released.

mod support;

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use http::StatusCode;
use provision::{Dep, Lazy};
use provision_axum::ProvisionLayer;
use support::{Conn, Event, Knobs, TestServer, eventually, journal, registry};

/// A query whose values must be numbers: `?n=abc` is refused with a 400.
type Numbers = Query<HashMap<String, u32>>;

async fn lazy_then_query(conn: Lazy<Conn>, _: Numbers) -> Result<String, String> {
    let conn = conn.get().await.map_err(|e| e.to_string())?;
    Ok(conn.id.to_string())
}

async fn eager_then_query(Dep(conn): Dep<Conn>, _: Numbers) -> String {
    conn.id.to_string()
}

async fn lazy_unused(_conn: Lazy<Conn>) -> &'static str {
    "not used"
}

#[tokio::test]
async fn a_lazy_service_before_a_refusing_extractor_builds_nothing() {
    let registry = registry(Knobs::default()).await;
    let app = Router::new()
        .route("/lazy", get(lazy_then_query))
        .route("/eager", get(eager_then_query))
        .route("/unused", get(lazy_unused))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(app).await;
    let probe = registry.probe();

    let (status, _) = server.get("/lazy?n=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the query is refused");
    let (status, _) = server.get("/unused").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        probe.acquires::<Conn>(),
        0,
        "neither a refused request nor an unused handle built a Conn"
    );

    // The control: the eager extractor in the same place builds one, and
    // releases it, for a request that is refused all the same.
    let (status, _) = server.get("/eager?n=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(probe.acquires::<Conn>(), 1, "Dep<Conn> was built first");
    eventually("the eager Conn is released", || {
        probe.releases::<Conn>() == 1
    })
    .await;

    let (status, body) = server.get("/lazy?n=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(probe.acquires::<Conn>(), 2, "get built it");
    let built: Vec<u64> = journal(&registry)
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Built("Conn", id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(
        body,
        built[1].to_string(),
        "the handler got the Conn get built"
    );
    eventually("the lazy Conn is released", || {
        probe.releases::<Conn>() == 2
    })
    .await;
    assert_eq!(journal(&registry).released("Conn").len(), 2);
    server.stop().await;
}
