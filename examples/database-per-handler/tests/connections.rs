//! Connections are opened per request, only by the handlers that ask, and
//! closed by the time the response has been read.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode};
use example_database_per_handler::{AuditLog, Connection, FakeDatabase, app};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

async fn send(addr: SocketAddr, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.expect("the server answers");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn connections_only_where_asked_and_always_closed() {
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
    let probe = registry.probe();
    let db = registry.app::<FakeDatabase>().unwrap();

    // Health asks for nothing: no connection.
    for _ in 0..3 {
        assert_eq!(
            send(addr, Method::GET, "/health", "").await,
            (StatusCode::OK, "ok".to_owned())
        );
    }
    assert_eq!(probe.acquires::<Connection>(), 0);
    assert_eq!(db.connections_opened(), 0);

    // One connection per request, released before the response completed.
    let (status, body) = send(addr, Method::POST, "/items", "apples").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::CREATED, "connection 1")
    );
    assert_eq!(
        probe.acquires::<Connection>(),
        1,
        "shared by both extractors"
    );
    assert_eq!(probe.releases::<Connection>(), 1);
    assert_eq!(probe.releases::<AuditLog>(), 1);
    assert_eq!(db.audit_trail(), ["connection 1: added \"apples\""]);

    send(addr, Method::POST, "/items", "pears").await;
    let (status, body) = send(addr, Method::GET, "/items", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "apples\npears"));
    assert_eq!(probe.acquires::<Connection>(), 3);
    assert_eq!(probe.releases::<Connection>(), 3);
    assert_eq!(probe.held::<Connection>(), 0);
    assert_eq!(
        probe.acquires::<AuditLog>(),
        2,
        "GET /items did not ask for it"
    );

    // A rejected write opens no connection: its handles are lazy.
    let (status, _) = send(addr, Method::POST, "/items", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (
            probe.acquires::<Connection>(),
            probe.releases::<Connection>()
        ),
        (3, 3)
    );
    assert_eq!(db.connections_opened(), 3);

    let _ = stop.send(());
    server.await.unwrap();
    drop(db);
    registry.shutdown().await;
    assert_eq!(probe.releases::<FakeDatabase>(), 1);
}
