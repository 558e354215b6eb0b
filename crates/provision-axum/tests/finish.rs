//! `Finish`: a route that runs to completion even when its client leaves.
//! With its client there it runs as any route does, inline in the response
//! future, on no task of its own; only a route whose client left is moved
//! onto the request's `Background` (natively a tokio task), where it
//! finishes, settles and releases as if it had answered.
//!
//! The same policy over real HTTP and PostgreSQL is
//! `apps/cloud-api/tests/it/disconnect.rs`.

mod support;

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{Request, StatusCode};
use provision::{Dep, Exit};
use provision_axum::{Finish, ProvisionLayer};
use support::{Collect, Conn, Knobs, exits, poll_once, registry};
use tokio::sync::Notify;
use tower_service::Service;

fn request(path: &str, background: &Collect) -> Request<Body> {
    let mut request = Request::post(path).body(Body::empty()).unwrap();
    request.extensions_mut().insert(background.background());
    request
}

fn router(registry: &provision::Registry, finish: &Finish, gate: &Arc<Notify>) -> Router {
    let gate = gate.clone();
    Router::new()
        .route(
            "/write",
            post(|Dep(conn): Dep<Conn>| async move { format!("conn {}", conn.id) })
                .layer(finish.clone()),
        )
        .route(
            "/gated",
            post(move |Dep(_conn): Dep<Conn>| async move {
                gate.notified().await;
                StatusCode::CREATED
            })
            .layer(finish.clone()),
        )
        .route(
            "/chunks",
            post(|Dep(_conn): Dep<Conn>| async move {
                // Three frames: read to the end inside the route, in order.
                let chunks = ["one ", "two ", "three"].map(Ok::<_, std::io::Error>);
                Body::from_stream(futures_util::stream::iter(chunks))
            })
            .layer(finish.clone()),
        )
        .layer(ProvisionLayer::new(registry.clone()))
}

#[tokio::test]
async fn a_finish_route_whose_client_stays_runs_inline_on_no_task() {
    let registry = registry(Knobs::default()).await;
    let finish = Finish::within(Duration::from_secs(30));
    let collect = Collect::default();
    let mut app = router(&registry, &finish, &Arc::new(Notify::new()));
    // The collected tasks never run: a route that needed one would never
    // answer, and the bound turns that into a failure instead of a hang.
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        app.call(request("/write", &collect)),
    )
    .await
    .expect("the route answered without a task of its own")
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(collect.take().len(), 0, "nothing went to the background");
    assert_eq!(
        exits(&registry),
        [Exit::Success(StatusCode::OK)],
        "settled and released before the answer"
    );
    assert_eq!(finish.outcomes().answered, 1);
    assert_eq!(finish.outcomes().disconnected, 0);
}

#[tokio::test]
async fn a_finish_route_whose_client_leaves_finishes_on_the_background() {
    let registry = registry(Knobs::default()).await;
    let finish = Finish::within(Duration::from_secs(30));
    let collect = Collect::default();
    let gate = Arc::new(Notify::new());
    let mut app = router(&registry, &finish, &gate);
    {
        let mut response = pin!(app.call(request("/gated", &collect)));
        assert!(poll_once(response.as_mut()).is_pending());
        assert_eq!(registry.probe().acquires::<Conn>(), 1);
    } // dropped: the client went away mid-handler
    assert_eq!(finish.outcomes().disconnected, 1);
    let tasks = collect.take();
    assert_eq!(
        tasks.len(),
        1,
        "the route goes on on the request's background"
    );
    assert_eq!(exits(&registry), [], "still running, nothing released");
    gate.notify_one();
    for task in tasks {
        task.await;
    }
    assert_eq!(exits(&registry), [Exit::Success(StatusCode::CREATED)]);
    assert_eq!(finish.outcomes().finished_after_disconnect, 1);
    assert_eq!(finish.outcomes().answered, 0);
}

#[tokio::test]
async fn a_finish_route_body_of_many_frames_is_read_whole_before_the_release() {
    let registry = registry(Knobs::default()).await;
    let finish = Finish::within(Duration::from_secs(30));
    let collect = Collect::default();
    let mut app = router(&registry, &finish, &Arc::new(Notify::new()));
    let response = app.call(request("/chunks", &collect)).await.unwrap();
    assert_eq!(
        exits(&registry),
        [Exit::Success(StatusCode::OK)],
        "released before the answer: the body was read inside the route"
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(&body[..], b"one two three");
}
