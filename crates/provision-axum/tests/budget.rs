//! A route's `Budget` layer over real HTTP: it governs the route it wraps
//! and no other, and it reaches a `finish` route's own scope when the
//! budget is the outer layer.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use provision::{Budget, Error, Lazy, Provide, Transient};
use provision_axum::{Finish, ProvisionLayer};
use support::{Knobs, TestServer, registry};

/// A transient service: one value per ask.
struct Piece;
impl Provide for Piece {
    type Lifetime = Transient;
    type Deps = ();
    async fn build(_: ()) -> Result<Self, Error> {
        Ok(Piece)
    }
}

/// Asks for three pieces.
async fn three(piece: Lazy<Piece>) -> Result<&'static str, Error> {
    let _held = (piece.get().await?, piece.get().await?, piece.get().await?);
    Ok("three")
}

const REFUSED: &str = r#"{"error":"budget exceeded: `Piece` may be built at most 2 times in one request (max_builds), and this request asked for more; is a handler building it in a loop?"}"#;

#[tokio::test]
async fn a_routes_budget_governs_that_route_only_and_reaches_into_a_finish_route() {
    let registry = registry(Knobs::default()).await;
    let at_most_two = Budget::new().max_builds::<Piece>(2);
    let router = Router::new()
        .route("/budgeted", get(three))
        .route(
            "/budgeted-finish",
            get(three).layer(Finish::within(Duration::from_secs(10))),
        )
        .route_layer(at_most_two)
        .route("/free", get(three))
        .layer(ProvisionLayer::new(registry.clone()));
    let server = TestServer::start(router).await;

    assert_eq!(
        server.get("/budgeted").await,
        (StatusCode::INTERNAL_SERVER_ERROR, REFUSED.to_owned())
    );
    assert_eq!(
        server.get("/budgeted-finish").await,
        (StatusCode::INTERNAL_SERVER_ERROR, REFUSED.to_owned()),
        "the finishing route runs in a scope of its own, under the same budget"
    );
    assert_eq!(
        server.get("/free").await,
        (StatusCode::OK, "three".to_owned())
    );

    let report = registry.probe().report::<Piece>();
    assert_eq!(report.budget_exceeded, 2);
    assert_eq!((report.acquires, report.releases), (2 + 2 + 3, 2 + 2 + 3));
    server.stop().await;
}
