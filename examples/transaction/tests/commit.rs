//! Through HTTP: a successful request's write is committed before its `201`
//! arrives; a failed or panicking request's write is never visible.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode};
use example_transaction::{FakeDatabase, Transaction, app};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

async fn send(addr: SocketAddr, method: Method, path: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.expect("the server answers");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn only_successful_writes_are_kept() {
    let (router, registry) = app().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let db = registry.app::<FakeDatabase>().unwrap();

    // Success: committed by the time the client has the 201 (no waiting).
    let (status, _) = send(addr, Method::POST, "/accounts/alice").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(db.accounts(), ["alice"]);

    // An error status after the write: rolled back.
    let (status, _) = send(addr, Method::POST, "/fail/bob").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A panic after the write: settle never ran, release rolled back.
    let (status, _) = send(addr, Method::POST, "/panic/carol").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    // The handler said 201, the commit refused: the client hears 409.
    let (status, body) = send(addr, Method::POST, "/accounts/alice").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("already exists"), "{body}");

    let (status, _) = send(addr, Method::POST, "/accounts/dave").await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, listed) = send(addr, Method::GET, "/accounts").await;
    assert_eq!((status, listed.as_str()), (StatusCode::OK, "alice\ndave"));
    assert!(!listed.contains("bob") && !listed.contains("carol"));

    let probe = registry.probe();
    assert_eq!(
        probe.acquires::<Transaction>(),
        5,
        "GET /accounts began none"
    );
    assert_eq!(probe.releases::<Transaction>(), 5);

    let _ = stop.send(());
    server.await.unwrap();
    drop(db);
    registry.shutdown().await;
    assert_eq!(probe.releases::<FakeDatabase>(), 1);
}
