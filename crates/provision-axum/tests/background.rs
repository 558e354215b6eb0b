//! A `Background` in the request's extensions receives the releases that
//! cannot be awaited (what `provision-worker` uses to hand them to the
//! fetch event's `wait_until`), and no others.

mod support;

use std::pin::pin;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body::Body as _;
use provision::{Dep, Exit};
use provision_axum::ProvisionLayer;
use support::{Collect, Conn, Knobs, exits, poll_once, registry};
use tower_service::Service;

fn request(path: &str, background: &Collect) -> Request<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    request.extensions_mut().insert(background.background());
    request
}

async fn pending_forever(Dep(_conn): Dep<Conn>) -> &'static str {
    std::future::pending::<()>().await;
    "never"
}

async fn ok(Dep(conn): Dep<Conn>) -> String {
    format!("conn {}", conn.id)
}

fn router(registry: &provision::Registry) -> Router {
    Router::new()
        .route("/pending", get(pending_forever))
        .route("/ok", get(ok))
        .layer(ProvisionLayer::new(registry.clone()))
}

#[tokio::test]
async fn a_request_dropped_mid_handler_is_released_on_its_background() {
    let registry = registry(Knobs::default()).await;
    let collect = Collect::default();
    let mut app = router(&registry);
    {
        let mut response = pin!(app.call(request("/pending", &collect)));
        assert!(poll_once(response.as_mut()).is_pending());
        assert_eq!(registry.probe().acquires::<Conn>(), 1);
    } // dropped: the client went away
    let tasks = collect.take();
    assert_eq!(tasks.len(), 1, "the close goes to the request's background");
    assert_eq!(registry.probe().releases::<Conn>(), 0, "not run yet");
    for task in tasks {
        task.await;
    }
    assert_eq!(exits(&registry), [Exit::Cancelled]);
}

#[tokio::test]
async fn a_body_dropped_unread_is_released_on_its_background() {
    let registry = registry(Knobs::default()).await;
    let collect = Collect::default();
    let mut app = router(&registry);
    let response = app.call(request("/ok", &collect)).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert!(
        collect.take().is_empty(),
        "nothing to do in the background yet"
    );
    drop(response);
    let tasks = collect.take();
    assert_eq!(tasks.len(), 1);
    for task in tasks {
        task.await;
    }
    assert_eq!(exits(&registry), [Exit::Cancelled]);
}

#[tokio::test]
async fn a_finished_body_releases_inline_and_uses_no_background() {
    let registry = registry(Knobs::default()).await;
    let collect = Collect::default();
    let mut app = router(&registry);
    let response = app.call(request("/ok", &collect)).await.unwrap();
    let mut body = pin!(response.into_body());
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        frame.unwrap();
    }
    assert_eq!(
        exits(&registry),
        [Exit::Success(http::StatusCode::OK)],
        "released before the body reported its end"
    );
    assert!(collect.take().is_empty());
}
